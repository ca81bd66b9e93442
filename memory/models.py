"""SQLAlchemy 2 models: the durable record of every user, session, message and model call.

The schema is owned by Alembic (``memory/migrations``); these classes only describe it.
Sessions are namespaced per user — ``(user_id, key)`` is unique — so two users can both
have a session called "work" and never see each other's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    JSON,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "BudgetAlert", "BudgetCounter", "User", "Conversation", "Message", "ProviderCall",
           "utcnow", "CacheEntry", "CacheLookup", "ControlFlag"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_conversations_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    messages: Mapped[list[Message]] = relationship(back_populates="conversation")


class Message(Base):
    """One stored message. ``status`` is ok / incomplete (stream broke) / error."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    #: For replies: the prompt's token split and the turn/memory ids that went in.
    context: Mapped[dict | None] = mapped_column(JSON)
    token_count: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    provider: Mapped[str | None] = mapped_column(String(200))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class ProviderCall(Base):
    """One attempt at one provider (retries and fallbacks each get a row): the ledger for
    cost, latency and outages. ``turn_id`` is the user message the call served;
    ``conversation_id`` is empty for calls outside a conversation (e.g. summaries)."""

    __tablename__ = "provider_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(128), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    purpose: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(200))
    session_key: Mapped[str | None] = mapped_column(String(128))
    turn_id: Mapped[int | None] = mapped_column(Integer, index=True)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    error_kind: Mapped[str | None] = mapped_column(String(64))
    #: UTC ``YYYY-MM-DD`` of ``started_at``: the budget day, and a portable GROUP BY key.
    day: Mapped[str | None] = mapped_column(String(10), index=True)


class BudgetCounter(Base):
    """Spend against one cap on one UTC day, in nano-USD (integers: exact, no float drift).

    ``reserved`` holds estimates of calls in flight; a call is admitted only by an
    ``UPDATE ... WHERE reserved + spent + :x <= :cap``, which is atomic on every database.
    """

    __tablename__ = "budget_counters"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    reserved_nusd: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_nusd: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetAlert(Base):
    """A budget crossed its soft limit (``level="soft"``) or refused a call (``"hard"``),
    at most once per scope, day and level: what a dashboard shows."""

    __tablename__ = "budget_alerts"
    __table_args__ = (UniqueConstraint("scope", "day", "level", name="uq_budget_alerts_scope_day_level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(160))
    day: Mapped[str] = mapped_column(String(10))
    level: Mapped[str] = mapped_column(String(8))
    spent_usd: Mapped[float] = mapped_column(Float)
    cap_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- issue 3 (jobs + facts, migration 0005): Job, Fact ----------------------------------

# --- issue 3 (summaries, migration 0006): SessionSummary --------------------------------

# --- issue 4 (caches + control, migration 0007): CacheEntry, ControlFlag ----------------


class CacheEntry(Base):
    """A complete, successful reply kept for reuse by the same user only.

    ``key`` hashes the whole normalised request (model, messages with their memory and
    document blocks, sampling settings); ``context_fp`` hashes everything but the latest
    user message, so a semantic hit (Chroma, on ``prompt``) needs the very same context.
    """

    __tablename__ = "cache_entries"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_cache_entries_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    key: Mapped[str] = mapped_column(String(64))
    context_fp: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    reply: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(200))
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class CacheLookup(Base):
    """One cache lookup and its outcome (``hit`` / ``miss``, ``kind`` exact or semantic):
    the rows hit rates are computed from."""

    __tablename__ = "cache_lookups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(String(128), index=True)
    day: Mapped[str] = mapped_column(String(10), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    #: Tokens the hit did not spend (the cached reply's usage); 0 on a miss.
    saved_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ControlFlag(Base):
    """An operator switch every process reads (e.g. ``kill_switch``), so one admin call
    reaches every server sharing the database."""

    __tablename__ = "control_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- issue 5 (documents + reviews, migration 0008): Source, Chunk, ReviewItem -----------
