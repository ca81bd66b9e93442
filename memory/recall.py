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
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from memory.memblock import approx_tokens, render_block
from memory.retrieval import HybridRetriever, MemoryItem, is_temporal
from memory.store import StoredMessage
from memory.worth import worth_indexing

__all__ = ["Recalled", "TurnMemory"]

_SPEAKERS = {"user": "User", "assistant": "Assistant"}
_SOURCE = re.compile(r"\[msg-(\d+) \|[^\]\n]*\]")
_ALSO = re.compile(r"msg-(\d+)")
#: Candidate windows searched per recall; the token budget decides how many are shown.
SEARCH_DEPTH = 40


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


def _item(message: StoredMessage, seq: int | None = None) -> MemoryItem:
    # The speaker is part of the text: "Assistant: you live in Porto" is not the user's word.
    speaker = _SPEAKERS.get(message.role, message.role)
    return MemoryItem(source_id=f"msg-{message.id}", text=f"{speaker}: {message.content}",
                      session_id=message.session_id, speaker=speaker,
                      timestamp=message.created_at, seq=seq)


def _shown_ids(text: str) -> list[int]:
    """Every message id a rendered block cites, collapsed duplicates' ``also`` ids too."""
    ids = [int(i) for head in _SOURCE.finditer(text) for i in _ALSO.findall(head.group(0))]
    return list(dict.fromkeys(ids))


class TurnMemory:
    """Turns in, memory blocks out; every call is scoped to one user."""

    def __init__(self, retriever: HybridRetriever, *, k: int = 30) -> None:
        self.retriever = retriever
        self.k = k

    def add(self, messages: Sequence[StoredMessage], *,
            previous_user: Mapping[int, str] | None = None) -> None:
        """Index stored messages (idempotent on message id); called off the critical path.

        Only turns ``memory.worth.worth_indexing`` keeps become memories (a reply echoing
        its user turn does not); each gets its position in the session, so recall shows
        it with its +-1 neighbour turns, as the LoCoMo benchmark scores it.
        """
        by_user: dict[str, list[MemoryItem]] = defaultdict(list)
        previous: dict[tuple[str, str], str] = {}
        next_seq: dict[tuple[str, str], int] = {}
        for message in sorted(messages, key=lambda m: m.id):
            key = (message.user_id, message.session_id)
            if message.status != "ok" or not message.content.strip():
                continue
            if message.role == "user":
                previous[key] = message.content
            asked = previous.get(key) or (previous_user or {}).get(message.id)
            if not worth_indexing(message.role, message.content, asked):
                continue
            known = self.retriever.seq_of(message.user_id, f"msg-{message.id}")
            if known is not None:  # re-indexed (catch-up, an edit): keep its place
                by_user[message.user_id].append(_item(message, known))
                continue
            if key not in next_seq:
                next_seq[key] = self.retriever.next_seq(*key)
            by_user[message.user_id].append(_item(message, next_seq[key]))
            next_seq[key] += 1
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
        depth = max(self.k, SEARCH_DEPTH)
        hits = [h for h in self.retriever.search(user_id, query, k=depth + len(excluded))
                if h.item.source_id not in excluded][:depth]
        text = render_block(hits, token_budget=token_budget, count_tokens=count_tokens,
                            temporal=is_temporal(query), max_items=self.k, fill=True)
        shown = _shown_ids(text)
        items = {it.source_id: it for h in hits for it in (h.item, *h.context)}
        snippets = [{"id": f"msg-{i}", "text": items[f"msg-{i}"].text, "source": "memory",
                     "date": _iso(items[f"msg-{i}"].timestamp)} for i in shown if f"msg-{i}" in items]
        return Recalled(text, shown, snippets)
