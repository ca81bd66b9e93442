"""Durable background jobs: an outbox table in the conversation database.

Why a table and not a thread queue: fact extraction and summaries call a model, and
models go down. Work kept in the database waits out an outage (backoff with jitter),
survives a crash or restart, and can be shared by several worker processes. On
PostgreSQL workers claim with ``SELECT ... FOR UPDATE SKIP LOCKED`` (no two workers
get the same job, nobody waits on another's lock); elsewhere (SQLite) one atomic
``UPDATE ... WHERE status = 'queued'`` claims, which the database serialises.

Delivery is at-least-once: a worker that dies mid-job leaves a ``running`` row whose
lock expires after ``lock_timeout_s``; the next claim puts it back in the queue (an
attempt is counted at claim time, so a job that keeps crashing its process still ends
``dead``). Handlers must therefore be idempotent.

Statuses: ``queued`` (waiting, maybe until ``run_after``), ``running``, ``done``,
``failed`` (given up for good: ``fail(permanent=True)``, or replaced by a newer queued
job with the same dedupe key), ``dead`` (``max_attempts`` used up).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, sessionmaker
from tenacity import RetryCallState, wait_exponential_jitter

from assistant.errors import RateLimited, RuntimeFailure
from memory.db import rowcount
from memory.models import Job as JobRow
from memory.models import aware as _aware
from memory.models import utcnow

if TYPE_CHECKING:
    from assistant.settings import Settings

__all__ = ["Handler", "Job", "JobQueue", "JobWorker", "open_jobs"]

log = logging.getLogger(__name__)
STATUSES = ("queued", "running", "done", "failed", "dead")
MAX_ERROR_CHARS = 4000




@dataclass(frozen=True)
class Job:
    """A snapshot of one job row (never a live ORM object)."""

    id: int
    kind: str
    payload: dict[str, Any]
    user_id: str | None
    dedupe_key: str | None
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    locked_by: str | None
    locked_at: datetime | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


def _job(row: JobRow) -> Job:
    return Job(id=row.id, kind=row.kind, payload=dict(row.payload or {}), user_id=row.user_id,
               dedupe_key=row.dedupe_key, status=row.status, attempts=row.attempts,
               max_attempts=row.max_attempts, run_after=_aware(row.run_after),
               locked_by=row.locked_by, locked_at=_aware(row.locked_at),
               last_error=row.last_error, created_at=_aware(row.created_at),
               finished_at=_aware(row.finished_at))


class JobQueue:
    """Enqueue, claim, complete and fail jobs in the ``jobs`` table of ``engine``."""

    def __init__(self, engine: Engine, *, max_attempts: int = 12, backoff_initial_s: float = 2.0,
                 backoff_max_s: float = 600.0, lock_timeout_s: float = 600.0,
                 reclaim_every_s: float | None = None) -> None:
        """``reclaim_every_s``: how often ``claim`` looks for expired locks (default a
        quarter of the lock timeout, at most 30 s)."""
        if max_attempts < 1 or backoff_initial_s < 0 or backoff_max_s < 0 or lock_timeout_s <= 0:
            raise ValueError("JobQueue needs max_attempts >= 1, non-negative backoff and a "
                             "positive lock timeout")
        self.engine = engine
        self.max_attempts = max_attempts
        self.lock_timeout = timedelta(seconds=lock_timeout_s)
        self.reclaim_every_s = (min(30.0, lock_timeout_s / 4) if reclaim_every_s is None
                                else reclaim_every_s)
        self._next_reclaim = 0.0
        # Exponential backoff with jitter, computed by tenacity's own wait strategy.
        self._wait = wait_exponential_jitter(initial=backoff_initial_s, max=backoff_max_s,
                                             jitter=backoff_initial_s)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._skip_locked = engine.dialect.name == "postgresql"
        self._listeners: list[Callable[[str], None]] = []

    # -- producing ---------------------------------------------------------------------
    def enqueue(self, kind: str, payload: Mapping[str, Any], *, user_id: str | None = None,
                dedupe_key: str | None = None, delay_s: float = 0.0,
                max_attempts: int | None = None) -> int:
        """Store a job and return its id. While a *queued* job with the same
        ``dedupe_key`` exists, that job's id is returned and nothing is added."""
        if not isinstance(kind, str) or not kind.strip() or len(kind) > 64:
            raise ValueError(f"job kind must be a non-empty string of at most 64 chars, got {kind!r:.80}")
        if not isinstance(payload, Mapping):
            raise TypeError(f"job payload must be a JSON object (a mapping), got {type(payload).__name__}")
        try:
            json.dumps(dict(payload))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"job payload must be JSON-serialisable: {exc}") from exc
        if dedupe_key is not None and (not dedupe_key or len(dedupe_key) > 200):
            raise ValueError("dedupe_key must be a non-empty string of at most 200 chars")
        now = utcnow()
        for _ in range(3):
            if dedupe_key is not None and (found := self._queued_with(dedupe_key)) is not None:
                return found
            try:
                with self._sessions() as db, db.begin():
                    row = JobRow(kind=kind, payload=dict(payload), user_id=user_id,
                                 dedupe_key=dedupe_key, status="queued", attempts=0,
                                 max_attempts=max_attempts or self.max_attempts,
                                 run_after=now + timedelta(seconds=max(0.0, delay_s)),
                                 created_at=now, updated_at=now)
                    db.add(row)
                    db.flush()
                    job_id = row.id
            except IntegrityError:
                continue  # a concurrent enqueue won the dedupe race: return its id
            for listener in list(self._listeners):
                listener(kind)
            return job_id
        raise RuntimeError(f"could not enqueue {kind!r} with dedupe key {dedupe_key!r}")

    def _queued_with(self, dedupe_key: str) -> int | None:
        with self._sessions() as db:
            return db.scalar(select(JobRow.id).where(JobRow.dedupe_key == dedupe_key,
                                                     JobRow.status == "queued"))

    def on_enqueue(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(kind)`` after each job this process enqueues (wakes workers)."""
        self._listeners.append(listener)

    # -- consuming ---------------------------------------------------------------------
    def claim(self, worker_id: str, kinds: Collection[str] | None = None, limit: int = 1) -> list[Job]:
        """Take up to ``limit`` due jobs (oldest due first) for ``worker_id``; each
        claim counts as an attempt. Expired locks are reclaimed first."""
        if kinds is not None and not kinds:
            return []
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + self.reclaim_every_s
            self.reclaim_stale()
        now = utcnow()
        due = [JobRow.status == "queued", JobRow.run_after <= now]
        if kinds is not None:
            due.append(JobRow.kind.in_(list(kinds)))
        pick = select(JobRow.id).where(*due).order_by(JobRow.run_after, JobRow.id).limit(limit)
        with self._sessions() as db:  # a read first: an idle poll never takes a write lock
            if db.scalar(pick.limit(1)) is None:
                return []
        claimed = {"status": "running", "locked_by": worker_id, "locked_at": now,
                   "attempts": JobRow.attempts + 1, "updated_at": now}
        with self._sessions() as db, db.begin():
            if self._skip_locked:
                ids = list(db.scalars(pick.with_for_update(skip_locked=True)))
                if ids:
                    db.execute(update(JobRow).where(JobRow.id.in_(ids)).values(**claimed)
                               .execution_options(synchronize_session=False))
            else:
                ids = list(db.scalars(
                    update(JobRow).where(JobRow.id.in_(pick.scalar_subquery()),
                                         JobRow.status == "queued")
                    .values(**claimed).returning(JobRow.id)
                    .execution_options(synchronize_session=False)))
            if not ids:
                return []
            rows = db.scalars(select(JobRow).where(JobRow.id.in_(ids)).order_by(
                JobRow.run_after, JobRow.id)).all()
            return [_job(r) for r in rows]

    def _release(self, job: Job, **values: Any) -> bool:
        """Update ``job`` only if ``job``'s claim still holds it."""
        with self._sessions() as db, db.begin():
            result = db.execute(
                update(JobRow).where(JobRow.id == job.id, JobRow.status == "running",
                                     JobRow.locked_by == job.locked_by)
                .values(locked_by=None, locked_at=None, updated_at=utcnow(), **values)
                .execution_options(synchronize_session=False))
            return rowcount(result) == 1

    def complete(self, job: Job) -> bool:
        """Mark done. False when the claim had expired (another worker may rerun it)."""
        ok = self._release(job, status="done", finished_at=utcnow(), last_error=None)
        if not ok:
            log.warning("job %d (%s) finished after its lock expired", job.id, job.kind)
        return ok

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        # tenacity's wait strategies read only the attempt number; no Retrying object is needed.
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, attempt)
        return float(self._wait(state))

    def fail(self, job: Job, error: BaseException | str, *, permanent: bool = False) -> str:
        """Record a failed attempt; returns the new status: ``queued`` (retry after a
        backoff, at least a provider's ``Retry-After``), ``dead`` (attempts used up) or
        ``failed`` (``permanent``)."""
        message = (error if isinstance(error, str) else f"{type(error).__name__}: {error}")
        message = message[:MAX_ERROR_CHARS]
        now = utcnow()
        if permanent:
            status, values = "failed", {"finished_at": now}
        elif job.attempts >= job.max_attempts:
            status, values = "dead", {"finished_at": now}
        else:
            delay = self.backoff(job.attempts)
            if isinstance(error, RateLimited) and error.retry_after:
                delay = max(delay, error.retry_after)
            status, values = "queued", {"run_after": now + timedelta(seconds=delay)}
        try:
            ok = self._release(job, status=status, last_error=message, **values)
        except IntegrityError:
            # A newer queued job with the same dedupe key will do this work.
            ok = self._release(job, status="failed", finished_at=now,
                               last_error=f"{message} (replaced by a newer queued job)")
            status = "failed"
        if not ok:
            log.warning("job %d (%s) failed after its lock expired: %s", job.id, job.kind, message)
        return status

    def reclaim_stale(self) -> int:
        """Requeue ``running`` jobs whose lock is older than the timeout (their worker
        died); those out of attempts become ``dead``. Returns how many were touched."""
        now = utcnow()
        stale = [JobRow.status == "running", JobRow.locked_at < now - self.lock_timeout]
        twin = aliased(JobRow)
        has_queued_twin = exists().where(twin.dedupe_key == JobRow.dedupe_key, twin.status == "queued")
        note = "lock expired: the worker stopped before finishing"
        try:
            with self._sessions() as db, db.begin():
                merged = rowcount(db.execute(update(JobRow).where(*stale, JobRow.dedupe_key.is_not(None),
                                                         has_queued_twin)
                                    .values(status="failed", finished_at=now, updated_at=now,
                                            locked_by=None, locked_at=None,
                                            last_error=note + " (replaced by a newer queued job)")
                                    .execution_options(synchronize_session=False)))
                dead = rowcount(db.execute(update(JobRow)
                                           .where(*stale, JobRow.attempts >= JobRow.max_attempts)
                                           .values(status="dead", finished_at=now, updated_at=now,
                                                   locked_by=None, locked_at=None, last_error=note)
                                           .execution_options(synchronize_session=False)))
                requeued = rowcount(db.execute(update(JobRow).where(*stale)
                                      .values(status="queued", run_after=now, updated_at=now,
                                              locked_by=None, locked_at=None, last_error=note)
                                      .execution_options(synchronize_session=False)))
        except IntegrityError:
            log.info("stale job reclaim raced a new enqueue; retrying at the next claim")
            return 0
        if requeued or dead:
            log.warning("reclaimed %d stale job(s), %d dead", requeued, dead)
        return merged + dead + requeued

    # -- inspecting --------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        with self._sessions() as db:
            row = db.get(JobRow, job_id)
            return _job(row) if row is not None else None

    def pending(self, kinds: Collection[str] | None = None, *, include_delayed: bool = False) -> int:
        """Jobs still to do: queued and due (or any queued with ``include_delayed``) plus
        running ones whose lock is live."""
        now = utcnow()
        queued = [JobRow.status == "queued"]
        if not include_delayed:
            queued.append(JobRow.run_after <= now)
        running = and_(JobRow.status == "running", JobRow.locked_at >= now - self.lock_timeout)
        stmt = select(func.count(JobRow.id)).where(and_(*queued) | running)
        if kinds is not None:
            stmt = stmt.where(JobRow.kind.in_(list(kinds)))
        with self._sessions() as db:
            return int(db.scalar(stmt) or 0)

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """Jobs per status (every status present, zeros included)."""
        stmt = select(JobRow.status, func.count(JobRow.id)).group_by(JobRow.status)
        if kind is not None:
            stmt = stmt.where(JobRow.kind == kind)
        with self._sessions() as db:
            found = dict(db.execute(stmt).all())
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def jobs(self, *, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[Job]:
        """The newest jobs, optionally of one status/kind (dashboards, `lastmile jobs`)."""
        stmt = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(JobRow.status == status)
        if kind is not None:
            stmt = stmt.where(JobRow.kind == kind)
        with self._sessions() as db:
            return [_job(r) for r in db.scalars(stmt)]

    def retry_now(self, kinds: Collection[str] | None = None) -> int:
        """Make every waiting job due at once (an operator knows the outage is over)."""
        stmt = update(JobRow).where(JobRow.status == "queued").values(run_after=utcnow())
        if kinds is not None:
            stmt = stmt.where(JobRow.kind.in_(list(kinds)))
        with self._sessions() as db, db.begin():
            return rowcount(db.execute(stmt.execution_options(synchronize_session=False)))


Handler = Callable[[Job], object]


def open_jobs(engine: Engine | None, settings: Settings) -> tuple[JobQueue | None, JobWorker | None]:
    """The queue and a (not yet started) worker over the store's database, configured
    from ``LASTMILE_JOB_*``; ``(None, None)`` for a store without a SQL engine."""
    if engine is None:
        return None, None
    queue = JobQueue(engine, max_attempts=settings.job_max_attempts,
                     backoff_initial_s=settings.job_backoff_initial_s,
                     backoff_max_s=settings.job_backoff_max_s,
                     lock_timeout_s=settings.job_lock_timeout_s)
    return queue, JobWorker(queue, poll_s=settings.job_poll_s)


class JobWorker:
    """A background thread that runs the handlers registered for job kinds.

    It claims only kinds it has a handler for, so processes with different handlers
    can share one table. A handler that raises is retried later (with backoff) — a
    ``RuntimeFailure`` (outage) is logged briefly, anything else with its traceback —
    and the worker itself never dies of a handler's error.
    """

    def __init__(self, queue: JobQueue, handlers: Mapping[str, Handler] | None = None, *,
                 worker_id: str | None = None, poll_s: float = 1.0, batch: int = 1) -> None:
        self.queue = queue
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:10]}"
        self.poll_s = poll_s
        self.batch = batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        queue.on_enqueue(self._on_enqueue)

    def register(self, kind: str, handler: Handler) -> None:
        """Handle ``kind`` from now on. The thread starts lazily: here when such jobs
        are already waiting (left by an earlier process), else at the first enqueue."""
        self.handlers[kind] = handler
        if self.queue.pending([kind], include_delayed=True):
            self.start()
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> JobWorker:
        """Start the thread (idempotent)."""
        with self._lock:
            if not self.running and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=f"lastmile-{self.worker_id}",
                                                daemon=True)
                self._thread.start()
        return self

    def _on_enqueue(self, kind: str) -> None:
        if kind in self.handlers:
            self.start()
            self._wake.set()

    def run_once(self) -> int:
        """Claim and run up to ``batch`` due jobs in this thread; returns how many ran."""
        jobs = self.queue.claim(self.worker_id, list(self.handlers), self.batch)
        for job in jobs:
            self._execute(job)
        return len(jobs)

    def _execute(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            handler(job)
        except RuntimeFailure as exc:
            status = self.queue.fail(job, exc)
            log.warning("job %d (%s) attempt %d failed (%s), now %s: %s", job.id, job.kind,
                        job.attempts, type(exc).__name__, status, exc)
        except Exception as exc:
            status = self.queue.fail(job, exc)
            log.exception("job %d (%s) attempt %d raised, now %s", job.id, job.kind,
                          job.attempts, status)
        else:
            self.queue.complete(job)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once() if self.handlers else 0
            except Exception:
                log.exception("job worker %s could not claim jobs", self.worker_id)
                ran = 0
            if not ran:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def flush(self, timeout: float = 30.0, *, include_delayed: bool = False) -> bool:
        """Block until no job of this worker's kinds is due or running (delayed retries
        count too with ``include_delayed``). Starts the worker if needed; False on timeout."""
        deadline = time.monotonic() + timeout
        kinds = list(self.handlers)
        while True:
            if not kinds or self.queue.pending(kinds, include_delayed=include_delayed) == 0:
                return True
            if time.monotonic() >= deadline or self._stop.is_set():
                return False
            self.start()
            self._wake.set()
            time.sleep(0.02)

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the job in hand (unfinished work stays queued for next time)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
