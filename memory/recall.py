"""Every stored turn as a recallable memory, so a conversation can draw on what was said
beyond its recent window — or in another session of the same user.

``TurnMemory`` is what the background ``TurnIndexer`` writes into (``add``) and what the
orchestrator asks for a memory block (``recall``). It adapts ``StoredMessage`` to the
hybrid retriever's ``MemoryItem`` (speaker, session, date, source id ``msg-<id>``), so
recall works even where a small model extracts no facts at all.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from memory.memblock import approx_tokens, render_block
from memory.retrieval import HybridRetriever, MemoryItem, is_temporal
from memory.store import StoredMessage

__all__ = ["Recalled", "TurnMemory"]

_SPEAKERS = {"user": "User", "assistant": "Assistant"}
_SOURCE = re.compile(r"\[msg-(\d+) \|")


@dataclass(frozen=True)
class Recalled:
    """A rendered memory block and the message ids it shows."""

    text: str = ""
    message_ids: list[int] = field(default_factory=list)
    #: What the block shows, one snippet per item: ``{"id", "text", "source", "date"}``
    #: (for answers built from retrieval alone, e.g. in safe mode).
    items: list[dict] = field(default_factory=list)


def _iso(value: object) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else None


def _item(message: StoredMessage) -> MemoryItem:
    # The speaker is part of the text: "Assistant: you live in Porto" is not the user's word.
    speaker = _SPEAKERS.get(message.role, message.role)
    return MemoryItem(source_id=f"msg-{message.id}", text=f"{speaker}: {message.content}",
                      session_id=message.session_id, speaker=speaker,
                      timestamp=message.created_at)


class TurnMemory:
    """Turns in, memory blocks out; every call is scoped to one user."""

    def __init__(self, retriever: HybridRetriever, *, k: int = 6) -> None:
        self.retriever = retriever
        self.k = k

    def add(self, messages: Sequence[StoredMessage]) -> None:
        """Index stored messages (idempotent on message id); called off the critical path."""
        by_user: dict[str, list[MemoryItem]] = defaultdict(list)
        for message in messages:
            if message.status == "ok" and message.content.strip():
                by_user[message.user_id].append(_item(message))
        for user_id, items in by_user.items():
            self.retriever.add(user_id, items)

    def forget_messages(self, user_id: str, message_ids: Collection[int]) -> None:
        """Drop these messages of the user from recall (their session was deleted)."""
        self.retriever.remove(user_id, [f"msg-{i}" for i in message_ids])

    def recall(self, user_id: str, query: str, *, token_budget: int,
               exclude: Collection[int] = (),
               count_tokens: Callable[[str], int] = approx_tokens) -> Recalled:
        """The best memories for ``query`` not already in the prompt (``exclude``: message
        ids of the recent window), rendered within ``token_budget`` tokens."""
        if token_budget <= 0 or not query.strip():
            return Recalled()
        excluded = {f"msg-{i}" for i in exclude}
        hits = [h for h in self.retriever.search(user_id, query, k=self.k + len(excluded))
                if h.item.source_id not in excluded][: self.k]
        text = render_block(hits, token_budget=token_budget, count_tokens=count_tokens,
                            temporal=is_temporal(query))
        shown = [int(i) for i in _SOURCE.findall(text)]
        items = {it.source_id: it for h in hits for it in (h.item, *h.context)}
        snippets = [{"id": f"msg-{i}", "text": items[f"msg-{i}"].text, "source": "memory",
                     "date": _iso(items[f"msg-{i}"].timestamp)} for i in shown if f"msg-{i}" in items]
        return Recalled(text, shown, snippets)
