"""The commerce panel beside a conversation, and the order actions it posts to.

The panel (``commerce:customer_panel``) is an htmx fragment the workspace's customer panel loads.
Every form posts to a view here that checks the "I confirm" box, calls one action and redirects
back to the conversation with a message; a refused action shows its reason and changed nothing
(the actions run in one transaction and call the platform before writing).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from kefu.accounts.models import Agent, Role
from kefu.commerce import actions, money, selectors
from kefu.commerce.models import (
    DisputeKind,
    Order,
    Refund,
    RefundStatus,
    ReturnRequest,
)
from kefu.conversations.models import Conversation
from kefu.conversations.selectors import get_conversation
from kefu.core.errors import InvalidInput, KefuError, NotFound

PANEL_ORDERS = 25
FULL_ORDERS = 3


def _agent(request: HttpRequest) -> Agent:
    return request.user  # type: ignore[return-value]


def _conversation(request: HttpRequest) -> Conversation | None:
    raw = request.GET.get("conversation") or request.POST.get("conversation") or ""
    if not raw.isdigit():
        return None
    try:
        return get_conversation(_agent(request), int(raw))
    except NotFound as missing:
        raise Http404(missing.message) from missing


@login_required
@require_GET
def customer_panel(request: HttpRequest, customer_id: int) -> HttpResponse:
    agent = _agent(request)
    conversation = _conversation(request)
    orders = selectors.orders_for_customer(agent, customer_id, limit=PANEL_ORDERS + 1)
    more = len(orders) > PANEL_ORDERS
    orders = orders[:PANEL_ORDERS]
    linked: set[int] = set()
    if conversation is not None:
        linked = set(conversation.order_links.values_list("order_id", flat=True))
    # Orders named in the conversation first, then the most recent. Those and the one asked
    # for (?order=) show in full with their actions; the rest as one line each, so a customer
    # with hundreds of orders stays fast to render.
    orders.sort(key=lambda o: o.pk not in linked)
    asked = request.GET.get("order", "")
    full = {o.pk for o in orders[:FULL_ORDERS]} | linked
    if asked.isdigit():
        full.add(int(asked))
    limit = actions.refund_limit(agent, orders[0].currency) if orders else None
    return render(
        request,
        "commerce/partials/customer_panel.html",
        {
            "orders": orders,
            "more": more,
            "full": full,
            "linked": linked,
            "conversation": conversation,
            "can_approve": agent.is_superuser or agent.role in (Role.LEAD, Role.ADMIN),
            "limit": limit,
            "dispute_kinds": DisputeKind.choices,
            "pending": RefundStatus.PENDING_APPROVAL,
        },
    )


def _back(request: HttpRequest, order: Order | None, conversation: Conversation | None):  # type: ignore[no-untyped-def]
    if conversation is not None:
        return redirect(reverse("workspace:conversation", args=[conversation.pk]))
    if order is not None and order.customer_id:
        return redirect(reverse("commerce:customer_panel", args=[order.customer_id]))
    return redirect("/")


def _confirmed(request: HttpRequest) -> None:
    if request.POST.get("confirm") != "yes":
        raise InvalidInput(_("Tick “I confirm” to carry this out."), field="confirm")


def _run(request: HttpRequest, order_id: int, action) -> HttpResponse:  # type: ignore[no-untyped-def]
    """Find the order (scoped), check confirmation, run ``action(order, conversation)``."""
    conversation, order = None, None
    try:
        conversation = _conversation(request)
        order = selectors.get_order(_agent(request), order_id)
        _confirmed(request)
        done = action(order, conversation)
    except KefuError as error:
        if isinstance(error, NotFound) and order is None:
            raise Http404(error.message) from error
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return _back(request, order, conversation)


def _lines(request: HttpRequest, order: Order) -> list[actions.RefundLine]:
    chosen = []
    for line in order.lines.all():
        raw = request.POST.get(f"line-{line.pk}", "").strip() or "0"
        if not raw.isdigit():
            raise InvalidInput(_("Quantities are whole numbers."), field="lines")
        if int(raw) > 0:
            chosen.append(actions.RefundLine(line_id=line.pk, quantity=int(raw)))
    return chosen


@login_required
@require_POST
def refund(request: HttpRequest, order_id: int) -> HttpResponse:
    def run(order: Order, conversation: Conversation | None) -> str:
        lines = _lines(request, order)
        raw_amount = request.POST.get("amount", "").strip()
        amount = money.to_minor(raw_amount, order.currency) if raw_amount and not lines else None
        if not lines and amount is None and request.POST.get("full") != "yes":
            raise InvalidInput(_("Choose lines, an amount, or a full refund."), field="lines")
        made = actions.refund_order(
            order=order,
            actor=_agent(request),
            lines=lines,
            amount=amount,
            reason=request.POST.get("reason", ""),
            conversation=conversation,
        )
        shown = money.format_money(made.amount, order.currency)
        if made.status == RefundStatus.PENDING_APPROVAL:
            return _("Refund of %(amount)s is above your limit: waiting for a lead.") % {
                "amount": shown
            }
        return _("Refunded %(amount)s.") % {"amount": shown}

    return _run(request, order_id, run)


@login_required
@require_POST
def cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    def run(order: Order, conversation: Conversation | None) -> str:
        actions.cancel_order(
            order=order,
            actor=_agent(request),
            reason=request.POST.get("reason", ""),
            conversation=conversation,
        )
        return _("Order %(number)s cancelled.") % {"number": order.number}

    return _run(request, order_id, run)


@login_required
@require_POST
def create_return(request: HttpRequest, order_id: int) -> HttpResponse:
    def run(order: Order, conversation: Conversation | None) -> str:
        actions.create_return(
            order=order,
            actor=_agent(request),
            lines=_lines(request, order),
            reason=request.POST.get("reason", ""),
            condition=request.POST.get("condition", ""),
            label_url=request.POST.get("label_url", "").strip(),
            conversation=conversation,
        )
        return _("Return created.")

    return _run(request, order_id, run)


@login_required
@require_POST
def advance_return(request: HttpRequest, order_id: int, return_id: int) -> HttpResponse:
    def run(order: Order, conversation: Conversation | None) -> str:
        rma = ReturnRequest.objects.filter(pk=return_id, order=order).first()
        if rma is None:
            raise InvalidInput(_("No such return on this order."))
        actions.advance_return(
            rma=rma,
            actor=_agent(request),
            status=request.POST.get("status", ""),
            label_url=request.POST.get("label_url", "").strip(),
            conversation=conversation,
        )
        return _("Return updated.")

    return _run(request, order_id, run)


@login_required
@require_POST
def open_dispute(request: HttpRequest, order_id: int) -> HttpResponse:
    def run(order: Order, conversation: Conversation | None) -> str:
        actions.open_dispute(
            kind=request.POST.get("kind", ""),
            actor=_agent(request),
            summary=request.POST.get("summary", ""),
            order=order,
            conversation=conversation,
        )
        return _("Dispute logged; first contact is due within 24 hours.")

    return _run(request, order_id, run)


@login_required
@require_POST
def decide_refund(request: HttpRequest, order_id: int, refund_id: int) -> HttpResponse:
    def run(order: Order, conversation: Conversation | None) -> str:
        pending = Refund.objects.filter(pk=refund_id, order=order).first()
        if pending is None:
            raise InvalidInput(_("No such refund on this order."))
        if request.POST.get("decision") == "approve":
            actions.approve_refund(refund=pending, actor=_agent(request))
            return _("Refund approved and carried out.")
        actions.reject_refund(
            refund=pending, actor=_agent(request), reason=request.POST.get("reason", "")
        )
        return _("Refund rejected.")

    return _run(request, order_id, run)


@login_required
@require_POST
def change_address(request: HttpRequest, order_id: int) -> HttpResponse:
    def run(order: Order, conversation: Conversation | None) -> str:
        address = {name: request.POST.get(name, "") for name in actions.ADDRESS_FIELDS}
        actions.update_shipping_address(
            order=order, actor=_agent(request), address=address, conversation=conversation
        )
        return _("Shipping address changed.")

    return _run(request, order_id, run)
