"""The agent workspace: the inbox list, the conversation with its customer, and the actions.

Pages render whole; htmx asks for fragments (the list, the timeline) when the page's websocket
says something changed, so every read goes through the same scoped selectors and permission
checks as a full page. Every change goes through ``conversations.actions``.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from kefu.accounts.models import Agent
from kefu.automation import actions as automation_actions
from kefu.automation import selectors as automation_selectors
from kefu.automation.models import Template
from kefu.conversations import actions
from kefu.conversations.attachments import max_attachment_bytes
from kefu.conversations.inbound import InboundAttachment
from kefu.conversations.models import (
    Attachment,
    Conversation,
    ConversationMerge,
    Direction,
    Message,
    Priority,
    Status,
)
from kefu.conversations.selectors import get_conversation
from kefu.core.csp import CSP_HEADER, email_frame_policy
from kefu.core.errors import InvalidInput, KefuError, NotFound
from kefu.customers import actions as customer_actions
from kefu.customers.models import Identity
from kefu.customers.selectors import get_customer
from kefu.workspace import actions as workspace_actions
from kefu.workspace import selectors
from kefu.workspace.models import SavedFilter
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
    context["teams"] = selectors.sidebar_teams(_agent(request))
    context["saved_filters"] = list(SavedFilter.objects.filter(agent=_agent(request)))
    return render(request, "workspace/inbox.html", context)


@login_required
@require_POST
def save_filter(request: HttpRequest) -> HttpResponse:
    query = ListQuery.from_params(request.POST)
    try:
        workspace_actions.save_filter(
            agent=_agent(request), name=request.POST.get("name", ""), query=query
        )
    except KefuError as error:
        messages.error(request, error.message)
    return redirect(f"{reverse('workspace:inbox')}?{urlencode(query.params())}")


@login_required
@require_POST
def delete_filter(request: HttpRequest, filter_id: int) -> HttpResponse:
    try:
        workspace_actions.delete_filter(agent=_agent(request), filter_id=filter_id)
    except NotFound:
        raise Http404("saved view not found") from None
    return redirect("workspace:inbox")


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
        "templates": _templates(agent, conversation),
        "outside_whatsapp_window": _outside_whatsapp_window(conversation),
    }


def _outside_whatsapp_window(conversation: Conversation) -> bool:
    """WhatsApp takes free text only within 24 hours of the customer's last message."""
    if conversation.inbox.kind != "whatsapp":
        return False
    from kefu.connectors.whatsapp.outbound import can_send_free_text

    return not can_send_free_text(conversation)


def _templates(agent: Agent, conversation: Conversation) -> list[Template]:
    """Reply templates the agent may use in this conversation's inbox, most used first."""
    return [
        t
        for t in automation_selectors.templates_for(agent)
        if not t.inbox_ids or conversation.inbox_id in t.inbox_ids
    ][:100]


def _usable_template(agent: Agent, conversation: Conversation, raw: str) -> Template:
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput(_("Choose a template."), field="template")
    template = automation_selectors.get_template(agent, int(raw))
    if template.inbox_ids and conversation.inbox_id not in template.inbox_ids:
        raise NotFound(f"template {raw} not found")
    return template


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


@login_required
@require_GET
def template_text(request: HttpRequest, conversation_id: int, template_id: int) -> HttpResponse:
    """A template rendered for this conversation, in the customer's language when it has one
    (plain text for the composer; nothing is written until the reply is sent)."""
    found = _visible(request, conversation_id)
    try:
        template = _usable_template(_agent(request), found, str(template_id))
        text, language = automation_actions.render_template(
            template=template, conversation=found, agent=_agent(request)
        )
    except KefuError as error:
        return HttpResponse(error.message, status=error.status_code, content_type="text/plain")
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Language"] = language
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
    files = _uploads(request, found)
    try:
        if request.POST.get("kind") == Direction.NOTE:
            actions.add_note(
                conversation=found, actor=_agent(request), text=text, attachments=files
            )
        else:
            template = None
            if request.POST.get("template"):
                template = _usable_template(_agent(request), found, request.POST["template"])
            actions.reply(
                conversation=found,
                actor=_agent(request),
                text=text,
                status=request.POST.get("then") or None,
                attachments=files,
            )
            if template is not None:
                # Counts the use and applies the template's tags, status and assignment; the
                # text sent is the agent's (they may have edited the template's).
                automation_actions.use_template(
                    template=template, conversation=found, actor=_agent(request)
                )
    except KefuError as error:
        return _failed(request, found, error)
    return _done(request, found)


MAX_FILES = 10


def _uploads(request: HttpRequest, conversation: Conversation) -> list[InboundAttachment]:
    """The composer's files. One over the inbox's limit is kept as a refused record (never read
    into memory), so the agent sees why it was not attached."""
    limit = max_attachment_bytes(Message(inbox=conversation.inbox))
    found = []
    for upload in request.FILES.getlist("files")[:MAX_FILES]:
        size = upload.size or 0
        if size > limit:
            found.append(
                InboundAttachment(
                    filename=upload.name or "attachment",
                    content_type=upload.content_type or "application/octet-stream",
                    size=size,
                    refused_reason=f"larger than the inbox limit of {limit} bytes",
                )
            )
            continue
        found.append(
            InboundAttachment(
                filename=upload.name or "attachment",
                content_type=upload.content_type or "application/octet-stream",
                content=upload.read(),
                size=size,
            )
        )
    return found


@login_required
@require_GET
def attachment(request: HttpRequest, attachment_id: int) -> FileResponse:
    """Download one attachment of a conversation the agent may see; always as a download, never
    rendered by the browser (an HTML or SVG file must not run in kefu's origin)."""
    record = Attachment.objects.filter(pk=attachment_id).select_related("message").first()
    if record is None or not record.file:
        raise Http404("attachment not found")
    _visible(request, record.message.conversation_id)
    response = FileResponse(record.file.open("rb"), as_attachment=True, filename=record.filename)
    response["Content-Type"] = "application/octet-stream"
    response["X-Content-Type-Options"] = "nosniff"
    return response


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
def retry_delivery(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """Send a failed reply again (the button on a failed reply in the timeline)."""
    found = _visible(request, conversation_id)
    message = Message.objects.filter(pk=message_id, conversation=found).first()
    if message is None:
        raise Http404("message not found")
    try:
        actions.retry_failed_delivery(message=message, actor=_agent(request))
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


# --- Bulk actions on the list ---------------------------------------------------------------------

BULK_LIMIT = 200


@login_required
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    """One action on the selected conversations; each goes through the same scoped lookup and
    action as on its own page (one it may not see counts as skipped, never as an error page)."""
    agent = _agent(request)
    ids = [int(raw) for raw in request.POST.getlist("ids")[:BULK_LIMIT] if raw.isdecimal()]
    action = request.POST.get("action", "")
    rows = [c for c in (_visible_or_none(agent, pk) for pk in ids) if c is not None]
    done, failed = _apply_bulk(agent, action, rows, request.POST)
    if done:
        messages.success(
            request,
            ngettext("%(count)d conversation updated.", "%(count)d conversations updated.", done)
            % {"count": done},
        )
    skipped = len(ids) - done
    if skipped or failed:
        messages.warning(
            request,
            _("%(count)d not changed: %(reason)s")
            % {"count": skipped, "reason": failed or _("not found or not allowed")},
        )
    back = request.POST.get("next", "/")
    return redirect(back if back.startswith("/") and not back.startswith("//") else "/")


def _visible_or_none(agent: Agent, conversation_id: int) -> Conversation | None:
    try:
        return get_conversation(agent, conversation_id)
    except NotFound:
        return None


def _apply_bulk(agent: Agent, action: str, rows: list[Conversation], form) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    if action == "merge":
        return _bulk_merge(agent, rows)
    done, failed = 0, ""
    for row in rows:
        try:
            if action == "assign_me":
                actions.assign(conversation=row, actor=agent, assignee=agent)
            elif action == "unassign":
                actions.assign(conversation=row, actor=agent, assignee=None)
            elif action == "status":
                actions.set_status(conversation=row, actor=agent, status=form.get("status", ""))
            elif action == "tag":
                names = form.get("tags", "").replace(",", " ").split()
                actions.tag(conversation=row, actor=agent, names=names)
            else:
                return 0, _("unknown action")
            done += 1
        except KefuError as error:
            failed = error.message
    return done, failed


def _bulk_merge(agent: Agent, rows: list[Conversation]) -> tuple[int, str]:
    """Fold every selected conversation into the one with the latest activity."""
    if len(rows) < 2 or len({row.customer_id for row in rows}) != 1:
        return 0, _("merge needs two or more conversations of the same customer")
    target, *sources = sorted(rows, key=lambda row: row.last_message_at, reverse=True)
    done, failed = 0, ""
    for source in sources:
        try:
            actions.merge_conversations(source=source, target=target, actor=agent)
            done += 1
        except KefuError as error:
            failed = error.message
    return done, failed


# --- The customer panel ---------------------------------------------------------------------------


@login_required
@require_POST
def customer_edit(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Edit the conversation's customer from its panel (name, language, location, notes, tags)."""
    found = _visible(request, conversation_id)
    customer = get_customer(_agent(request), found.customer_id)
    changes: dict[str, object] = {
        name: request.POST.get(name, "") for name in ("name", "language", "location", "notes")
    }
    changes["tags"] = request.POST.get("tags", "").replace(",", " ").split()
    try:
        customer_actions.update_customer(customer=customer, actor=_agent(request), changes=changes)
    except KefuError as error:
        return _failed(request, found, error)
    return _done(request, found)
