"""The small protocols through which the orchestrator reaches memory.

Anything with these methods plugs in: the SQL store and Chroma indexer in ``memory/``
are the defaults, not requirements.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from assistant.records import SessionInfo, StoredMessage

if TYPE_CHECKING:
    from pydantic import BaseModel

    from assistant.turn import TurnState

T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")

__all__ = ["Documents", "Extract", "Grounding", "MessageStore", "Recall", "Recalled", "Scanner",
           "SourceRef", "TurnRecorder", "WriteGuard"]


class MessageStore(Protocol):
    def add_message(self, user_id: str, key: str, role: str, content: str,
                    **fields: Any) -> StoredMessage: ...
    def recent(self, user_id: str, key: str, limit: int) -> list[StoredMessage]: ...
    def history(self, user_id: str, key: str) -> list[StoredMessage]: ...
    def create_session(self, user_id: str, title: str | None = None) -> SessionInfo: ...
    def list_sessions(self, user_id: str) -> list[SessionInfo]: ...
    def rename_session(self, user_id: str, key: str, title: str) -> SessionInfo: ...


class TurnRecorder(Protocol):
    """Receives every completed turn (e.g. to index it for recall)."""

    def submit(self, messages: Sequence[StoredMessage]) -> None: ...
    def flush(self) -> None: ...


class Recalled(Protocol):
    """What a ``Recall`` returns (read-only: frozen dataclasses satisfy it)."""

    @property
    def text(self) -> str: ...
    @property
    def message_ids(self) -> list[int]: ...


class Recall(Protocol):
    """Finds what this user said before that bears on ``query``, as a prompt block."""

    def recall(self, user_id: str, query: str, *, token_budget: int,
               exclude: Collection[int] = (),
               count_tokens: Callable[[str], int] = ...) -> Recalled: ...


@dataclass(frozen=True)
class SourceRef:
    """One document chunk shown to the model, numbered so a reply can cite ``[id]``."""

    id: str  # "1", "2", … in prompt order; the citation guard resolves these
    chunk_id: str
    title: str
    path: str
    text: str
    page: int | None = None
    collection: str = "default"
    #: Set when the chunk looks like a prompt injection (marked at ingest, or flagged by a
    #: guard that kept it): the prompt labels it; ``None`` for an unmarked chunk.
    injection_score: float | None = None
    injection_rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grounding:
    """Retrieved document sources: ``text`` is the numbered block for the prompt
    ("" when nothing relevant was found); ``sources`` are the refs it shows."""

    text: str = ""
    sources: list[SourceRef] = field(default_factory=list)


class Documents(Protocol):
    """Finds this user's document chunks that bear on ``query``, within ``token_budget``
    tokens (as measured by ``count_tokens``). Must never return another user's chunks.
    One with ``scoped = True`` also takes ``collections=`` and ``chat=`` (a chat's scope)."""

    def retrieve(self, user_id: str, query: str, *, token_budget: int,
                 count_tokens: Callable[[str], int]) -> Grounding: ...


class Extract(Protocol):
    """Ask a chat model for JSON matching ``schema`` (``assistant.extract.extract`` is the
    one implementation). ``memory`` receives it from the wiring side — the fact extractor
    and the summariser call it — so memory never imports the assistant layer."""

    def __call__(self, model: Any, schema: type[M], source: str, /, *, instructions: str = ...,
                 metadata: dict[str, Any] | None = ..., max_reasks: int = ...,
                 max_tokens: int = ...) -> M: ...


class WriteGuard(Protocol):
    """The memory-write hook of the guards (``guardrails.GuardChain`` is one): returns the
    item, possibly rewritten, or ``None`` to keep it out of memory."""

    def before_memory_write(self, ctx: TurnState, item: T) -> T | None: ...


#: The prompt-injection scanner run over document chunks as they are stored: text →
#: (score, rule names). ``guardrails.injection`` plugs its own into ``memory.corpus``.
Scanner = Callable[[str], tuple[float, Sequence[str]]]
