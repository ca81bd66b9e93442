"""The stored records of a conversation as every layer sees them: a session, a message,
and what went into a reply's prompt.

They are plain frozen dataclasses (never ORM rows), defined here in the kernel because
the store in ``memory/`` makes them, the protocols describe them and the assistant and
the UI read them: each layer may import the kernel, none may import the layer above.
``memory.store`` and ``assistant.context`` re-export them under their old paths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

__all__ = ["ContextReport", "SessionInfo", "StoredMessage"]


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    user_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int = 0


@dataclass(frozen=True)
class StoredMessage:
    id: int
    session_id: str
    user_id: str
    role: str
    content: str
    status: str
    created_at: datetime
    provider: str | None = None
    token_count: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    finish_reason: str | None = None
    context: dict | None = None
    #: A user message of the turn loop: ``pending`` until its reply is stored, then
    #: ``answered`` or ``interrupted`` (no reply came); None when no turn answers it.
    reply_state: str | None = None

    @property
    def interrupted(self) -> bool:
        """A user message whose reply never came: shown as such, kept out of prompts."""
        return self.role == "user" and self.reply_state == "interrupted"

    @property
    def tool_calls(self) -> list[dict]:
        """An assistant message's tool calls (``{"id", "name", "args"}``), kept in ``context``."""
        return list((self.context or {}).get("tool_calls") or []) if self.role == "assistant" else []

    @property
    def tool_call_id(self) -> str | None:
        """For a ``tool`` message: the id of the call it answers."""
        return (self.context or {}).get("tool_call_id") if self.role == "tool" else None


@dataclass(frozen=True)
class ContextReport:
    """What went into the prompt, per block, so replays can chart it (stored per reply)."""

    budget: int
    system_tokens: int
    history_tokens: int
    history_messages: int
    dropped_messages: int
    message_ids: list[int] = field(default_factory=list)
    #: The recalled-memory block (added to the system message) and the turns it shows.
    memory_tokens: int = 0
    memory_ids: list[int] = field(default_factory=list)
    summary_tokens: int = 0
    #: Message ids the summary in the prompt covers (``None`` when no summary was shown).
    summary_from_id: int | None = None
    summary_to_id: int | None = None
    summary_version: int | None = None
    documents_tokens: int = 0
    document_ids: list[str] = field(default_factory=list)  # chunk ids of the sources shown
    #: Each block's budget for this turn (``system`` is what the prompt costs, ``recent``
    #: what the turns could use after the other blocks took what they needed).
    budgets: dict[str, int] = field(default_factory=dict)
    reply_reserve: int = 0

    @property
    def total_tokens(self) -> int:
        return (self.system_tokens + self.history_tokens + self.memory_tokens
                + self.summary_tokens + self.documents_tokens)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, as stored with the reply."""
        return {**asdict(self), "total_tokens": self.total_tokens}
