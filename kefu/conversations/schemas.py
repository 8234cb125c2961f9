"""Request and response shapes of the conversations API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Request bodies: plain pydantic models, unknown fields refused.

    Not ninja's ``Schema``: its root validator (made for reading ORM objects) runs per object
    and cost about a fifth of a 500-message batch's CPU; request bodies are always dicts.
    """

    model_config = ConfigDict(extra="forbid")


class CustomerIn(Strict):
    name: str = Field("", max_length=200)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=40)
    external_id: str | None = Field(None, max_length=254)


class InboundIn(Strict):
    inbox_id: int
    external_id: str = Field(..., min_length=1, max_length=255)
    customer: CustomerIn
    subject: str = Field("", max_length=300)
    text: str = Field("", max_length=200_000)
    html: str = Field("", max_length=1_000_000)
    sent_at: datetime | None = None
    references: list[str] = Field(default_factory=list, max_length=100)
    thread_key: str = Field("", max_length=200)


class AcceptedOut(Schema):
    conversation_id: int
    message_id: int
    created: bool


class BatchIn(Strict):
    messages: list[InboundIn] = Field(..., min_length=1, max_length=500)


# Plain pydantic models too (see Strict): 500 results a response, always dicts.
class BatchItemOut(BaseModel):
    index: int
    status: Literal["created", "duplicate", "error"]
    conversation_id: int | None = None
    message_id: int | None = None
    error: str | None = None


class BatchOut(BaseModel):
    results: list[BatchItemOut]


class InboxOut(Schema):
    id: int
    name: str
    kind: str
    store_id: int | None
    store: str | None = None


class AgentRef(Schema):
    id: int
    username: str
    name: str


class ConversationOut(Schema):
    id: int
    number: str
    inbox_id: int
    store_id: int | None
    customer_id: int
    subject: str
    status: str
    priority: str
    intent: str
    language: str
    assignee_id: int | None
    team_id: int | None
    tags: list[str]
    last_message_at: datetime
    last_message_preview: str
    waiting_since: datetime | None
    unread_count: int
    message_count: int
    merged_into_id: int | None
    created_at: datetime
    updated_at: datetime


class AttachmentOut(Schema):
    id: int
    filename: str
    content_type: str
    size: int
    refused_reason: str


class MessageOut(Schema):
    id: int
    direction: str
    author_kind: str
    author_agent_id: int | None
    subject: str
    text: str
    html: str
    language: str
    external_id: str | None
    delivery_status: str
    sent_at: datetime
    attachments: list[AttachmentOut]


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


class ConversationPage(Schema):
    items: list[ConversationOut]
    next_cursor: str | None


class ConversationPatch(Strict):
    status: str | None = None
    priority: str | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    tags: list[str] | None = Field(None, max_length=50)


class ReplyIn(Strict):
    kind: Literal["reply", "note"] = "reply"
    text: str = Field("", max_length=100_000)
    html: str = Field("", max_length=1_000_000)
    status: str | None = None
