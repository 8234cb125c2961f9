"""The agent workspace: the inbox list, the conversation with its customer, and the actions.

Pages render whole; htmx asks for fragments (the list, the timeline) when the page's websocket
says something changed, so every read goes through the same scoped selectors and permission
checks as a full page. Every change goes through ``conversations.actions``.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from kefu.accounts.models import Agent
from kefu.automation import actions as automation_actions
from kefu.conversations import actions
from kefu.conversations.models import (
    Conversation,
    ConversationMerge,
    Direction,
    Message,
    Priority,
    Status,
)
from kefu.conversations.selectors import get_conversation
from kefu.core.csp import CSP_HEADER, email_frame_policy
from kefu.core.errors import KefuError, NotFound
from kefu.customers.models import Identity
from kefu.workspace import selectors
from kefu.workspace.selectors import ListQuery


def _agent(request: HttpRequest) -> Agent:
    return request.user  # type: ignore[return-value]


def _visible(request: HttpRequest, conversation_id: int) -> Conversation:
    """The conversation if the agent may see it; a 404 otherwise (never a 403: no probing)."""
    try:
        return get_conversation(_agent(request), conversation_id)
    except NotFound:
        raise Http404("conversation not found") from None


# --- The inbox list --------------------------------------------------------------------------


def _list_context(request: HttpRequest) -> dict:
    query = ListQuery.from_params(request.GET)
    page = selectors.inbox_page(_agent(request), query)
    return {
        "query": query,
        "page": page,
        "statuses": Status.choices,
        "now": timezone.now(),
    }


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    context = _list_context(request)
    context["inboxes"] = selectors.sidebar_inboxes(_agent(request))
    return render(request, "workspace/inbox.html", context)


@login_required
@require_GET
def inbox_list(request: HttpRequest) -> HttpResponse:
    """The list alone: what htmx swaps in when the page hears of a change."""
    return render(request, "workspace/partials/list.html", _list_context(request))


# --- The conversation --------------------------------------------------------------------------


def _conversation_context(request: HttpRequest, conversation: Conversation) -> dict:
    agent = _agent(request)
    return {
        "conversation": conversation,
        "entries": selectors.timeline(conversation),
        "identities": Identity.objects.filter(customer_id=conversation.customer_id).order_by(
            "kind", "value"
        ),
        "others": selectors.customer_conversations(agent, conversation),
        "colleagues": selectors.colleagues(agent, conversation),
        "tags": list(conversation.tags.values_list("name", flat=True)),
        "statuses": Status.choices,
        "priorities": Priority.choices,
        "merges": ConversationMerge.objects.filter(target=conversation).select_related("source"),
        "allow_images": request.GET.get("images") == "1",
        "commerce_panel_url": _commerce_panel_url(conversation),
    }


def _commerce_panel_url(conversation: Conversation) -> str | None:
    """The orders fragment of the commerce app, when it is installed (it loads itself)."""
    try:
        url = reverse("commerce:customer_panel", kwargs={"customer_id": conversation.customer_id})
    except NoReverseMatch:
        return None
    return f"{url}?conversation={conversation.pk}"


@login_required
@require_GET
def conversation(request: HttpRequest, conversation_id: int) -> HttpResponse:
    found = _visible(request, conversation_id)
    if found.merged_into_id is not None:
        return redirect("workspace:conversation", conversation_id=found.merged_into_id)
    if found.unread_count:
        actions.mark_read(conversation=found, actor=_agent(request))
    return render(request, "workspace/conversation.html", _conversation_context(request, found))


@login_required
@require_GET
def timeline(request: HttpRequest, conversation_id: int) -> HttpResponse:
    found = _visible(request, conversation_id)
    return render(
        request, "workspace/partials/timeline.html", _conversation_context(request, found)
    )


@login_required
@require_GET
@xframe_options_sameorigin
def message_html(request: HttpRequest, message_id: int) -> HttpResponse:
    """One email's sanitized HTML, for the sandboxed frame on the conversation page.

    Its own policy: no script at all, inline styles (emails need them), and remote images only
    when the agent asked for them (``?images=1``): tracking pixels stay blocked by default.
    """
    message = Message.objects.filter(pk=message_id).only("conversation_id", "html").first()
    if message is None:
        raise Http404("message not found")
    _visible(request, message.conversation_id)
    response = HttpResponse(
        "<!DOCTYPE html><meta charset=utf-8><base target=_blank>" + message.html,
        content_type="text/html; charset=utf-8",
    )
    response[CSP_HEADER] = email_frame_policy(allow_remote_images=request.GET.get("images") == "1")
    response["Referrer-Policy"] = "no-referrer"
    return response


# --- Actions -----------------------------------------------------------------------------------


def _done(request: HttpRequest, conversation: Conversation) -> HttpResponse:
    return redirect(reverse("workspace:conversation", args=[conversation.pk]))


def _failed(request: HttpRequest, conversation: Conversation, error: KefuError) -> HttpResponse:
    context = _conversation_context(request, conversation)
    context["error"] = error.message
    return render(request, "workspace/conversation.html", context, status=error.status_code)


@login_required
@require_POST
def reply(request: HttpRequest, conversation_id: int) -> HttpResponse:
    found = _visible(request, conversation_id)
    text = request.POST.get("text", "").strip()
    try:
        if request.POST.get("kind") == Direction.NOTE:
            actions.add_note(conversation=found, actor=_agent(request), text=text)
        else:
            actions.reply(
                conversation=found,
                actor=_agent(request),
                text=text,
                status=request.POST.get("then") or None,
            )
    except KefuError as error:
        return _failed(request, found, error)
    return _done(request, found)


@login_required
@require_POST
def assign(request: HttpRequest, conversation_id: int) -> HttpResponse:
    found = _visible(request, conversation_id)
    raw = request.POST.get("assignee", "")
    assignee = None
    if raw == "me":
        assignee = _agent(request)
    elif raw.isdecimal():
        assignee = next(
            (a for a in selectors.colleagues(_agent(request), found) if a.pk == int(raw)), None
        )
        if assignee is None:
            return _failed(request, found, KefuError(_("That agent cannot see this inbox.")))
    try:
        actions.assign(conversation=found, actor=_agent(request), assignee=assignee)
    except KefuError as error:
        return _failed(request, found, error)
    return _done(request, found)


@login_required
@require_POST
def status(request: HttpRequest, conversation_id: int) -> HttpResponse:
    found = _visible(request, conversation_id)
    try:
        until = _snooze_until(request.POST.get("snooze_until", ""))
        if until is not None:
            automation_actions.snooze(conversation=found, actor=_agent(request), until=until)
        else:
            actions.set_status(
                conversation=found, actor=_agent(request), status=request.POST.get("status", "")
            )
    except KefuError as error:
        return _failed(request, found, error)
    return _done(request, found)


def _snooze_until(raw: str) -> datetime | None:
    """A local date-time from the form, in the agent's time zone (activated by middleware)."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise KefuError(_("Snooze needs a date and time."), field="snooze_until") from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment


@login_required
@require_POST
def priority(request: HttpRequest, conversation_id: int) -> HttpResponse:
    found = _visible(request, conversation_id)
    try:
        actions.set_priority(
            conversation=found, actor=_agent(request), priority=request.POST.get("priority", "")
        )
    except KefuError as error:
        return _failed(request, found, error)
    return _done(request, found)


@login_required
@require_POST
def tags(request: HttpRequest, conversation_id: int) -> HttpResponse:
    found = _visible(request, conversation_id)
    names = [n for n in request.POST.get("tags", "").replace(",", " ").split() if n]
    try:
        if request.POST.get("remove"):
            actions.untag(conversation=found, actor=_agent(request), names=names)
        else:
            actions.tag(conversation=found, actor=_agent(request), names=names)
    except KefuError as error:
        return _failed(request, found, error)
    return _done(request, found)


@login_required
@require_POST
def merge(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Fold this conversation into another one of the same customer (``into``)."""
    found = _visible(request, conversation_id)
    raw = request.POST.get("into", "").lstrip("#")
    if not raw.isdecimal() or len(raw) > 18:
        return _failed(request, found, KefuError(_("Choose a conversation to merge into.")))
    target = _visible(request, int(raw))
    if target.customer_id != found.customer_id:
        return _failed(
            request, found, KefuError(_("Only conversations of the same customer merge."))
        )
    try:
        actions.merge_conversations(source=found, target=target, actor=_agent(request))
    except KefuError as error:
        return _failed(request, found, error)
    return _done(request, target)


@login_required
@require_POST
def unmerge(request: HttpRequest, merge_id: int) -> HttpResponse:
    record = ConversationMerge.objects.filter(pk=merge_id).select_related("target").first()
    if record is None:
        raise Http404("merge not found")
    target = _visible(request, record.target_id)
    _visible(request, record.source_id)
    try:
        restored = actions.unmerge_conversations(merge=record, actor=_agent(request))
    except KefuError as error:
        return _failed(request, target, error)
    return _done(request, restored)
