"""SQLAlchemy 2 models: the durable record of every user, session, message and model call.

The schema is owned by Alembic (``memory/migrations``); these classes only describe it.
Sessions are namespaced per user — ``(user_id, key)`` is unique — so two users can both
have a session called "work" and never see each other's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ApiKey",
    "Base",
    "BudgetAlert",
    "BudgetCounter",
    "CacheEntry",
    "CacheLookup",
    "CanaryRun",
    "Chunk",
    "ControlFlag",
    "Conversation",
    "DriftReport",
    "Fact",
    "Feedback",
    "Job",
    "MemoryChange",
    "MemoryGeneration",
    "Message",
    "ProviderCall",
    "ReviewDecision",
    "ReviewItem",
    "SessionSummary",
    "SignInSession",
    "Source",
    "User",
    "aware",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: datetime | None) -> datetime | None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every one stored here is UTC (None stays None)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: scrypt hash for UI sign-in (None: the user cannot sign in with a password).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    #: user / reviewer / admin.
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    #: Set by ``lastmile users disable``: no sign-in, no API key, sessions revoked.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SignInSession(Base):
    """A UI sign-in: only the SHA-256 of its random cookie token is stored, so a leaked
    table cannot be replayed; expiry and revocation are checked on every request."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_conversations_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The document collections this chat may use (migration 0018); NULL: the default.
    collections: Mapped[list | None] = mapped_column(JSON)

    messages: Mapped[list[Message]] = relationship(back_populates="conversation")


class Message(Base):
    """One stored message. ``status`` is ok / incomplete (stream broke) / error.
    ``reply_state`` (user messages of the turn loop, migration 0015): pending /
    answered / interrupted (no reply came); NULL when no turn answers it."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_id_id", "conversation_id", "id"),
                      Index("ix_messages_reply_pending", "reply_state",
                            sqlite_where=text("reply_state = 'pending'"),
                            postgresql_where=text("reply_state = 'pending'")))

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
    reply_state: Mapped[str | None] = mapped_column(String(16))

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


class Job(Base):
    """One unit of background work (the outbox): ``queued`` → ``running`` → ``done``;
    a failed attempt goes back to ``queued`` with a later ``run_after`` (backoff),
    ``failed`` is a permanent failure and ``dead`` means attempts ran out. At most one
    *queued* job per ``dedupe_key`` (partial unique index)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "run_after"),
        Index("uq_jobs_queued_dedupe", "dedupe_key", unique=True,
              sqlite_where=text("status = 'queued' AND dedupe_key IS NOT NULL"),
              postgresql_where=text("status = 'queued' AND dedupe_key IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    user_id: Mapped[str | None] = mapped_column(String(128), index=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Fact(Base):
    """One version of one fact about a user. Versions are never overwritten: an update
    closes the old row (``valid_to``, status ``superseded``, ``superseded_by``) and
    adds a new one that points back (``supersedes``); "forget" sets ``forgotten`` and
    erases the text (``text`` and ``value`` empty, ``text_sha256`` its hash), in every
    earlier version too. ``source_ids`` are the message ids the fact was drawn from
    (provenance)."""

    __tablename__ = "facts"
    __table_args__ = (Index("ix_facts_user_status_key", "user_id", "status", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    key: Mapped[str] = mapped_column(String(120))
    value: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    source_ids: Mapped[list] = mapped_column(JSON, default=list)
    confidence: Mapped[float] = mapped_column(Float, default=0.5)
    status: Mapped[str] = mapped_column(String(16), default="valid")
    extractor: Mapped[str | None] = mapped_column(String(32))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    supersedes: Mapped[int | None] = mapped_column(ForeignKey("facts.id", ondelete="SET NULL"))
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("facts.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    text_sha256: Mapped[str | None] = mapped_column(String(64))  # set when the text is erased


# --- issue 3 (summaries, migration 0006): SessionSummary --------------------------------


class SessionSummary(Base):
    """One version of a session's rolling summary, covering messages ``from_id..to_id``.

    Each fold adds a version (previous summary + newly dropped turns), so the history of
    what the model was told about the earlier conversation is kept for audit.
    """

    __tablename__ = "session_summaries"
    __table_args__ = (UniqueConstraint("conversation_id", "version",
                                       name="uq_session_summaries_conversation_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    from_id: Mapped[int] = mapped_column(Integer)
    to_id: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    #: "model" (schema-validated model output) or "extractive" (the deterministic fallback).
    method: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(200))
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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
    value: Mapped[str] = mapped_column(Text)  # text since 0019: admin settings hold prompts
    updated_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- issue 5 (documents + reviews, migration 0008): Source, Chunk, ReviewItem -----------


class Source(Base):
    """One ingested file of a collection. ``owner`` is ``user:<id>`` or ``shared``; the
    content hash makes re-ingesting an unchanged file a no-op."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("owner", "collection", "path", name="uq_sources_owner_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(140), index=True)
    collection: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(1000))
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    pages: Mapped[int | None] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Chunk(Base):
    """A piece of a source as retrieved and cited: text plus where it came from."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_owner_id", "owner", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    owner: Mapped[str] = mapped_column(String(140))
    collection: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    #: Prompt-injection scan at ingest: the score (``None``: stored before scanning existed)
    #: and the rules that matched, comma-separated.
    injection_score: Mapped[float | None] = mapped_column(Float)
    injection_rules: Mapped[str | None] = mapped_column(String(500))


class ReviewItem(Base):
    """Something a human must look at: a low-confidence answer (``kind`` answer, tied to
    the stored reply) or a risky memory write (``kind`` memory_write, ``payload``)."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    session_key: Mapped[str | None] = mapped_column(String(128))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    question: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(500))
    confidence: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReviewDecision(Base):
    """Audit row: who decided what about a review item, and why."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    edited_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- issue 6 (accounts, migration 0009): ApiKey -----------------------------------------


class ApiKey(Base):
    """A per-user key for the OpenAI-compatible endpoint; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Feedback(Base):
    """A user's like (+1) or dislike (-1) of one reply, with an optional note."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("user_id", "message_id", name="uq_feedback_user_message"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    value: Mapped[int] = mapped_column(SmallInteger)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- issue 12 (memory generations, migration 0014) -------------------------------------


class MemoryGeneration(Base):
    """A user's memory generation: bumped in the transaction of every write that changes
    what recall can return, so a replica's cache knows it is stale (``memory.generations``).
    ``floor``: the log below it was compacted away (a cache older than it reloads)."""

    __tablename__ = "memory_generations"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    floor: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MemoryChange(Base):
    """One source id added to or dropped from a user's memory at a generation: the delta
    a cache applies; a drop with no later add is a tombstone."""

    __tablename__ = "memory_changes"
    __table_args__ = (Index("ix_memory_changes_user_generation", "user_id", "generation"),
                      Index("ix_memory_changes_user_source", "user_id", "source_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128))
    generation: Mapped[int] = mapped_column(BigInteger)
    source_id: Mapped[str] = mapped_column(String(200))
    op: Mapped[str] = mapped_column(String(8))  # "add" | "drop"


class DriftReport(Base):
    """One drift check (issue 15): PSI per signal between a recent and a baseline window;
    ``level`` is ok / warn (some PSI ≥ 0.1) / alert (some PSI ≥ 0.25)."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    level: Mapped[str] = mapped_column(String(8))
    recent_turns: Mapped[int] = mapped_column(Integer)
    baseline_turns: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict | None] = mapped_column(JSON)


class CanaryRun(Base):
    """One run of the golden suite inside ``serve`` (issue 15): the canary history."""

    __tablename__ = "canary_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    suite: Mapped[str] = mapped_column(String(200))
    passed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[float] = mapped_column(Float)
    results: Mapped[dict | None] = mapped_column(JSON)
