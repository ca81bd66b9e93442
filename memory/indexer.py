"""Indexes stored turns into Chroma off the critical path.

Embedding a turn costs a few milliseconds the user should not wait for, so turns are
handed to one background worker. Nothing is lost if it fails or the process dies: a
message counts as indexed only once Chroma accepted it, and ``catch_up`` re-sends the
rest at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from memory.store import ConversationStore, StoredMessage
from memory.vectors import TurnIndex

__all__ = ["TurnIndexer"]

log = logging.getLogger(__name__)


class TurnIndexer:
    def __init__(self, store: ConversationStore, index: TurnIndex) -> None:
        self.store = store
        self.index = index
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lastmile-index")
        self._pending: list[Future[bool]] = []

    def _index(self, messages: Sequence[StoredMessage]) -> bool:
        try:
            self.index.add(messages)
            self.store.mark_indexed(m.id for m in messages)
        except Exception:  # noqa: BLE001 - retried by catch_up; a turn never fails for this
            log.exception("indexing %d message(s) failed; will retry at next start",
                          len(messages))
            return False
        return True

    def submit(self, messages: Sequence[StoredMessage]) -> None:
        """Queue messages for indexing and return at once."""
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._index, list(messages)))

    def catch_up(self) -> None:
        """Queue everything stored but not yet indexed (after a crash or outage)."""
        while (batch := self.store.unindexed(limit=256)) and self._index(batch):
            pass

    def flush(self) -> None:
        """Wait until everything submitted so far is indexed (tests, shutdown)."""
        for future in list(self._pending):
            future.result()
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)
