"""Every write to customers and identities goes through here."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from kefu.accounts.models import Agent
from kefu.core.errors import Conflict, InvalidInput, NotFound
from kefu.core.events import emit
from kefu.customers.identities import IdentityRef
from kefu.customers.models import Customer, CustomerMerge, Identity, IdentityKind


def find_identities(refs: Sequence[IdentityRef]) -> list[Identity]:
    """The stored identities among ``refs``, with their customers (one query)."""
    if not refs:
        return []
    condition = Q()
    for ref in refs:
        condition |= Q(kind=ref.kind, value=ref.value)
    return list(Identity.objects.filter(condition).select_related("customer"))


def _live(customer: Customer) -> Customer:
    """Follow merge pointers to the customer that is still in use."""
    seen = set()
    while customer.merged_into_id is not None and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def resolve_customer(
    *,
    identities: Sequence[IdentityRef],
    name: str = "",
    language: str = "",
    found: list[Identity] | None = None,
) -> Customer:
    """Find the customer owning any of ``identities``, or create one; link the new identities.

    Identities already owned by another customer are left where they are (a suggestion for a
    manual merge, never an automatic one: two people may share a phone). ``found`` is the result
    of :func:`find_identities` when the caller looked them up already (the pipeline does so
    before taking the write lock). Must run inside a transaction; safe against a concurrent
    first message from the same person.
    """
    if not identities:
        raise InvalidInput("a message needs at least one customer identity (email, phone or id)")
    if found is None:
        found = find_identities(identities)
    created = None
    if found:
        # Several owners: the message's first identity decides (as the batch path does), not
        # the database's row order, which differs between SQLite and PostgreSQL.
        order = {(ref.kind, ref.value): n for n, ref in enumerate(identities)}
        first = min(found, key=lambda i: order.get((i.kind, i.value), len(order)))
        customer = _live(first.customer)
    else:
        customer = created = Customer.objects.create(
            name=name[:200], language=language, **_contact_fields(identities)
        )
    known = {(i.kind, i.value) for i in found}
    for ref in identities:
        if (ref.kind, ref.value) not in known:
            customer = _attach(customer, ref)
    if created is not None and created.pk == customer.pk:
        # Not when a concurrent first message won and the new row was deleted again.
        emit("customer.created", customer_id=customer.pk)
    _fill_contact_fields(customer, identities, name)
    return customer


def _contact_fields(refs: Sequence[IdentityRef]) -> dict[str, str]:
    """The first email and phone among ``refs``, as a new customer's contact fields."""
    fields: dict[str, str] = {}
    for ref in refs:
        if ref.kind == IdentityKind.EMAIL:
            fields.setdefault("email", ref.value)
        elif ref.kind == IdentityKind.PHONE:
            fields.setdefault("phone", ref.value)
    return fields


def _attach(customer: Customer, ref: IdentityRef) -> Customer:
    """Add ``ref`` to ``customer``; if a concurrent request added it first, use its owner."""
    try:
        with transaction.atomic():
            Identity.objects.create(customer=customer, kind=ref.kind, value=ref.value)
        return customer
    except IntegrityError:
        owner = Identity.objects.select_related("customer").get(kind=ref.kind, value=ref.value)
        if customer.pk != owner.customer_id and not customer.identities.exists():
            # We created ``customer`` a moment ago and lost the race: use the winner instead.
            customer.delete()
            return _live(owner.customer)
        return customer


def _fill_contact_fields(customer: Customer, refs: Sequence[IdentityRef], name: str) -> None:
    changed = []
    if name and not customer.name:
        customer.name = name[:200]
        changed.append("name")
    for ref in refs:
        if ref.kind == IdentityKind.EMAIL and not customer.email:
            customer.email = ref.value
            changed.append("email")
        elif ref.kind == IdentityKind.PHONE and not customer.phone:
            customer.phone = ref.value
            changed.append("phone")
    if changed:
        customer.save(update_fields=[*changed, "updated_at"])


@transaction.atomic
def link_identity(*, customer: Customer, identity: IdentityRef, actor: Agent | None) -> Identity:
    """Attach ``identity`` to ``customer``.

    Raises Conflict if another customer owns it, or if ``customer`` was merged into another one
    (link it to that one instead).
    """
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.merged_into_id is not None:
        raise Conflict(
            f"customer {customer.pk} was merged into customer {customer.merged_into_id}",
            field="customer",
        )
    existing = Identity.objects.filter(kind=identity.kind, value=identity.value).first()
    if existing is not None:
        if existing.customer_id == customer.pk:
            return existing
        raise Conflict(
            f"{identity.kind} {identity.value} belongs to customer {existing.customer_id}; "
            "merge the two customers instead"
        )
    created = Identity.objects.create(customer=customer, kind=identity.kind, value=identity.value)
    _fill_contact_fields(customer, [identity], "")
    emit("customer.updated", customer_id=customer.pk, actor_id=actor.pk if actor else None)
    return created


def _lock_pair(first: Customer, second: Customer) -> tuple[Customer, Customer]:
    """Both customers re-read under row locks, taken in id order so two merges cannot deadlock."""
    rows = Customer.objects.select_for_update().filter(pk__in=[first.pk, second.pk]).order_by("pk")
    locked = {c.pk: c for c in rows}
    if len(locked) != 2:
        raise NotFound("customer not found")
    return locked[first.pk], locked[second.pk]


def _record_customer_change(
    conversation_ids: Sequence[int], *, old: int, new: int, merge: int, actor: Agent | None
) -> None:
    """A timeline entry on each moved conversation, so its history shows whose it was."""
    from kefu.conversations.models import ConversationEvent, EventKind

    ConversationEvent.objects.bulk_create(
        ConversationEvent(
            conversation_id=pk,
            kind=EventKind.CUSTOMER_CHANGED,
            actor=actor,
            data={"from": old, "to": new, "merge": merge},
        )
        for pk in conversation_ids
    )


@transaction.atomic
def merge_customers(*, source: Customer, target: Customer, actor: Agent | None) -> CustomerMerge:
    """Move ``source``'s identities and conversations to ``target``; undo with unmerge_customers.

    Raises InvalidInput for a customer merged into itself and Conflict when either customer is
    already merged into another.
    """
    from kefu.conversations.models import Conversation

    if source.pk == target.pk:
        raise InvalidInput("cannot merge a customer into itself")
    source, target = _lock_pair(source, target)
    if source.merged_into_id is not None:
        raise Conflict(f"customer {source.pk} is already merged")
    if target.merged_into_id is not None:
        raise Conflict(
            f"customer {target.pk} was merged into customer {target.merged_into_id}; "
            "merge into that one"
        )
    identity_ids = list(source.identities.order_by("pk").values_list("pk", flat=True))
    conversation_ids = list(source.conversations.order_by("pk").values_list("pk", flat=True))
    Identity.objects.filter(pk__in=identity_ids).update(customer=target)
    Conversation.objects.filter(pk__in=conversation_ids).update(customer=target)
    source.merged_into = target
    source.save(update_fields=["merged_into", "updated_at"])
    record = CustomerMerge.objects.create(
        source=source,
        target=target,
        identity_ids=identity_ids,
        conversation_ids=conversation_ids,
        merged_by=actor,
    )
    _record_customer_change(
        conversation_ids, old=source.pk, new=target.pk, merge=record.pk, actor=actor
    )
    emit("customer.merged", source_id=source.pk, target_id=target.pk, merge_id=record.pk)
    return record


@transaction.atomic
def unmerge_customers(*, merge: CustomerMerge, actor: Agent | None) -> Customer:
    """Undo ``merge``: the moved identities and conversations go back to the source customer.

    What the target gained since (new identities, new conversations) stays with the target.
    Raises Conflict when the merge was undone already, or when the target was merged into
    another customer since (undo that merge first).
    """
    from kefu.conversations.models import Conversation

    merge = CustomerMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at is not None:
        raise Conflict("this merge was already undone")
    source, target = _lock_pair(merge.source, merge.target)
    if target.merged_into_id is not None:
        raise Conflict(
            f"customer {target.pk} was merged into customer {target.merged_into_id} since; "
            "undo that merge first"
        )
    Identity.objects.filter(pk__in=merge.identity_ids, customer=target).update(customer=source)
    moved = list(
        Conversation.objects.filter(pk__in=merge.conversation_ids, customer=target)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    Conversation.objects.filter(pk__in=moved).update(customer=source)
    source.merged_into = None
    source.save(update_fields=["merged_into", "updated_at"])
    merge.undone_at = timezone.now()
    merge.save(update_fields=["undone_at"])
    _record_customer_change(moved, old=target.pk, new=source.pk, merge=merge.pk, actor=actor)
    emit("customer.unmerged", source_id=source.pk, target_id=target.pk)
    return source


# What an agent may edit about a customer, with the longest value each field holds.
EDITABLE_FIELDS = {"name": 200, "language": 16, "location": 200, "notes": 10_000}
MAX_CUSTOMER_TAGS = 50


@transaction.atomic
def update_customer(
    *, customer: Customer, actor: Agent | None, changes: dict[str, object]
) -> Customer:
    """Change a customer's name, language, location, notes and/or tags (a list of names).

    Raises InvalidInput for an unknown field or a value that does not fit (nothing is written),
    Conflict for a customer merged into another one (edit that one).
    """
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.merged_into_id is not None:
        raise Conflict(f"customer {customer.pk} was merged into customer {customer.merged_into_id}")
    cleaned = {name: _clean_field(name, value) for name, value in changes.items()}
    changed = [name for name, value in cleaned.items() if getattr(customer, name) != value]
    if not changed:
        return customer
    for name in changed:
        setattr(customer, name, cleaned[name])
    customer.updated_at = timezone.now()
    customer.save(update_fields=[*changed, "updated_at"])
    emit(
        "customer.updated",
        customer_id=customer.pk,
        actor_id=actor.pk if actor else None,
        changes=changed,
    )
    return customer


def _clean_field(name: str, value: object) -> object:
    if name == "tags":
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise InvalidInput("tags must be a list of names", field="tags")
        tags = list(dict.fromkeys(t.strip().lower()[:64] for t in value if t.strip()))
        if len(tags) > MAX_CUSTOMER_TAGS:
            raise InvalidInput(f"at most {MAX_CUSTOMER_TAGS} tags", field="tags")
        return tags
    if name not in EDITABLE_FIELDS:
        raise InvalidInput(f"{name} cannot be changed here", field=name)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", field=name)
    value = value.replace("\x00", "").strip()
    if len(value) > EDITABLE_FIELDS[name]:
        raise InvalidInput(f"{name} is longer than {EDITABLE_FIELDS[name]} characters", field=name)
    return value


ERASED_NAME = "Erased customer"
ERASED_TEXT = "[erased]"


@transaction.atomic
def erase_customer(*, customer: Customer, actor: Agent) -> Customer:
    """Erase a customer's personal data on request (right to erasure): only admins.

    The customer keeps its row (conversations, orders and reports still count), but loses its
    name, contact fields, notes, tags and every identity; the texts, subjects, HTML, provider
    metadata and attachment files of all messages of its conversations are replaced or deleted.
    An audit entry records who erased whom (never what). Search forgets the texts
    (``customer.erased``). Not undoable, by design.
    """
    from kefu.accounts.actions import audit
    from kefu.accounts.models import Role
    from kefu.core.errors import Forbidden

    if actor.role != Role.ADMIN:
        raise Forbidden("only admins can erase a customer's data")
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.merged_into_id is not None:
        raise Conflict(f"customer {customer.pk} was merged into customer {customer.merged_into_id}")
    identities = Identity.objects.filter(customer=customer).count()
    Identity.objects.filter(customer=customer).delete()
    for name in ("email", "phone", "location", "notes", "language"):
        setattr(customer, name, "")
    customer.name, customer.tags = ERASED_NAME, []
    customer.save()
    messages = _erase_conversation_texts(customer)
    audit(
        actor=actor,
        action="customer.erased",
        obj=customer,
        identities=identities,
        messages=messages,
    )
    emit("customer.erased", customer_id=customer.pk, actor_id=actor.pk)
    return customer


def _erase_conversation_texts(customer: Customer) -> int:
    from kefu.conversations.models import Attachment, Conversation, Message

    conversations = Conversation.objects.filter(customer=customer)
    conversations.update(subject="", last_message_preview=ERASED_TEXT)
    messages = Message.objects.filter(conversation__customer=customer)
    for attachment in Attachment.objects.filter(message__in=messages).exclude(file=""):
        attachment.file.delete(save=False)
    Attachment.objects.filter(message__in=messages).update(file="", filename="erased")
    return messages.update(text=ERASED_TEXT, html="", subject="", metadata={"erased": True})
