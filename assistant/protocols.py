"""The small protocols through which the orchestrator reaches memory.

Anything with these methods plugs in: the SQL store and Chroma indexer in ``memory/``
are the defaults, not requirements.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from memory.store import SessionInfo, StoredMessage

__all__ = ["MessageStore", "Recall", "Recalled", "TurnRecorder"]


class MessageStore(Protocol):
    def add_message(self, user_id: str, key: str, role: str, content: str, **fields: Any) -> StoredMessage: ...
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
    text: str
    message_ids: list[int]


class Recall(Protocol):
    """Finds what this user said before that bears on ``query``, as a prompt block."""

    def recall(self, user_id: str, query: str, *, token_budget: int,
               exclude: Collection[int] = (),
               count_tokens: Callable[[str], int] = ...) -> Recalled: ...
