"""Indexes stored turns into Chroma off the critical path.

Embedding and a Chroma write cost more than the rest of a turn, and the user should not
wait for them, so turns go to one background worker. It lingers until turns stop
arriving for a moment (or a batch is full) and then indexes them in one embedding pass
and one upsert: on two cores, embedding *during* a burst of turns would slow every
turn down for no gain. Nothing is lost if it fails or
the process dies: a message counts as indexed only once Chroma accepted it, and
``catch_up`` re-sends the rest at start-up.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Protocol, cast

from memory.store import ConversationStore, StoredMessage

__all__ = ["TurnIndexer"]

log = logging.getLogger(__name__)
MAX_BATCH = 256
LINGER_S = 0.25
_STOP = object()


class Index(Protocol):
    """Where turns go: anything that can take a batch of stored messages (idempotently)."""

    def add(self, messages: Sequence[StoredMessage]) -> None: ...


class TurnIndexer:
    def __init__(self, store: ConversationStore, index: Index, *,
                 linger_s: float = LINGER_S) -> None:
        self.store = store
        self.index = index
        self.linger_s = linger_s
        self._flushing = threading.Event()
        self._queue: queue.Queue[object] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="lastmile-index", daemon=True)
        self._worker.start()

    def _index(self, messages: Sequence[StoredMessage]) -> bool:
        try:
            self.index.add(messages)
            self.store.mark_indexed(m.id for m in messages)
        except Exception:  # retried by catch_up; a turn never fails for this
            log.exception("indexing %d message(s) failed; will retry at next start",
                          len(messages))
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            items = [item]
            while len(items) < MAX_BATCH and items[-1] is not _STOP:
                try:
                    wait = 0 if self._flushing.is_set() else self.linger_s
                    items.append(self._queue.get(timeout=wait) if wait else self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [m for it in items if it is not _STOP for m in cast("Sequence[StoredMessage]", it)]
            if batch:
                self._index(batch)
            for _ in items:
                self._queue.task_done()
            if any(it is _STOP for it in items):
                return

    def submit(self, messages: Sequence[StoredMessage]) -> None:
        """Queue messages for indexing and return at once."""
        self._queue.put(list(messages))

    def catch_up(self) -> None:
        """Index everything stored but not yet indexed (after a crash or outage)."""
        while (batch := self.store.unindexed(limit=MAX_BATCH)) and self._index(batch):
            pass

    def flush(self) -> None:
        """Block until everything submitted so far is indexed (tests, shutdown)."""
        self._flushing.set()
        try:
            self._queue.join()
        finally:
            self._flushing.clear()

    def close(self) -> None:
        if self._worker.is_alive():
            self._flushing.set()
            self._queue.put(_STOP)
            self._worker.join()
