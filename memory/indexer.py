"""Indexes stored turns into turn memory (Chroma) as ``index`` jobs, off the critical path.

Embedding and a Chroma write cost more than the rest of a turn, and the user should not
wait for them. Each message's ``index`` job is written with the message (the outbox,
``memory.outbox.index_rule``) and becomes due ``LASTMILE_INDEX_LINGER_S`` later; the
index lane of any replica's workers claims every due one (up to ``max_batch``) and
indexes them in one embedding pass and one upsert. So a batch closes after at most the
linger (plus one poll) or ``max_batch`` messages — never "when turns stop arriving",
which starved under a steady stream — and a burst of turns on two cores is still
embedded in a few passes, not one per turn.

Nothing is lost if it fails or the process dies: a failed batch is retried with backoff
by the queue, a dead worker's batch is reclaimed by another when its lease runs out, and
a message counts as indexed only once the index accepted it (``indexed_at``). The
``index-sweep`` job (queued by each process whose workers start) indexes whatever has no
job: rows from before the outbox, or written while the outbox was paused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from memory.jobs import Job, JobQueue
from memory.outbox import INDEX_JOB
from memory.store import ConversationStore, StoredMessage

if TYPE_CHECKING:
    from memory.workers import Workers

__all__ = ["INDEX_JOB", "SWEEP_JOB", "TurnIndexer"]

log = logging.getLogger(__name__)
MAX_BATCH = 64
SWEEP_BATCH = 256
SWEEP_JOB = "index-sweep"


class Index(Protocol):
    """Where turns go: anything that can take a batch of stored messages (idempotently);
    ``previous_user`` maps a reply's id to the text of the user turn it answers."""

    def add(self, messages: Sequence[StoredMessage], *,
            previous_user: Mapping[int, str] | None = None) -> None: ...


class TurnIndexer:
    """The ``index`` and ``index-sweep`` job handlers over one store and one index."""

    def __init__(self, store: ConversationStore, index: Index, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.index = index
        self.max_batch = max_batch

    def _index(self, messages: Sequence[StoredMessage], previous: Mapping[int, str]) -> None:
        if messages:
            self.index.add(messages, previous_user=previous)
            self.store.mark_indexed(m.id for m in messages)

    def __call__(self, jobs: Sequence[Job]) -> None:
        """Index the messages of a batch of ``index`` jobs (gone or superseded ones are
        skipped; an index failure raises, so the queue retries the batch)."""
        ids = [int(job.payload["message_id"]) for job in jobs if "message_id" in job.payload]
        messages, previous = self.store.for_indexing(ids)
        self._index(messages, previous)

    def sweep(self, job: Job | None = None) -> int:
        """Index every stored message that is not yet indexed; returns how many."""
        done = 0
        while batch := self.store.unindexed(limit=SWEEP_BATCH):
            messages, previous = self.store.for_indexing(m.id for m in batch)
            self._index(messages, previous)
            done += len(batch)
            if len(batch) < SWEEP_BATCH:
                break
        if done:
            log.info("indexed %d message(s) that had no index job", done)
        return done

    catch_up = sweep  # the earlier name (it ran in Assistant.__init__)

    def queue_sweep(self, jobs: JobQueue) -> None:
        """Ask any worker to sweep (once: deduplicated while queued)."""
        jobs.enqueue(SWEEP_JOB, {}, dedupe_key=SWEEP_JOB)

    def register(self, workers: Workers, *, linger_s: float = 0.0) -> None:
        """Run both handlers on ``workers``' index lane."""
        workers.register_batch(INDEX_JOB, self, max_batch=self.max_batch, linger_s=linger_s)
        workers.register(SWEEP_JOB, self.sweep, lane="index")
