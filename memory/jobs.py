"""Durable background jobs: an outbox table in the conversation database.

Why a table and not a thread queue: indexing, fact extraction and summaries outlive a
turn, and models and vector stores go down. Work kept in the database waits out an
outage (backoff with jitter), survives a crash or restart, and is shared by every worker
process on the database. On PostgreSQL workers claim with ``SELECT ... FOR UPDATE SKIP
LOCKED`` (no two workers get the same job, nobody waits on another's lock); elsewhere
(SQLite) one atomic ``UPDATE ... WHERE status = 'queued'`` claims, which the database
serialises. Follow-up work of a message is written in the message's own transaction
(``add``, used by ``memory.outbox``), so an acknowledged message cannot lose it.

Leases, not long locks: a claim holds a job for ``lease_s`` (``LASTMILE_JOB_LEASE_S``,
30 s) from ``locked_at``, which the holder's heartbeat renews (``renew``, run by
``memory.workers``). A worker that dies stops renewing; any live process requeues the
job once the lease ran out (``reclaim_stale``, also run before claims), so delivery is
at-least-once and handlers are idempotent. An attempt is counted at claim time, so a
job that keeps crashing its process still ends ``dead``. Leases compare this host's
clock with the others': keep replicas' clocks in sync (NTP), and the lease far above
any skew. Every process on one database must use the same lease length.

Statuses: ``queued`` (waiting, maybe until ``run_after``), ``running``, ``done``,
``failed`` (given up for good: ``fail(permanent=True)``, or replaced by a newer queued
job with the same dedupe key), ``dead`` (``max_attempts`` used up).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, case, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker
from tenacity import RetryCallState, wait_exponential_jitter

from assistant.errors import RateLimited
from memory.db import reads, rowcount
from memory.models import Job as JobRow
from memory.models import aware as _aware
from memory.models import utcnow

if TYPE_CHECKING:
    from assistant.settings import Settings
    from memory.workers import JobWorker, Workers

__all__ = ["Handler", "Job", "JobQueue", "JobWorker", "Workers", "open_jobs"]

log = logging.getLogger(__name__)
STATUSES = ("queued", "running", "done", "failed", "dead")
MAX_ERROR_CHARS = 4000
DEFAULT_LEASE_S = 30.0


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
    locked_at: datetime | None  # the claim, or the holder's last heartbeat
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
                 backoff_max_s: float = 600.0, lease_s: float | None = None,
                 lock_timeout_s: float | None = None, reclaim_every_s: float | None = None) -> None:
        """``lease_s``: how long a claim holds a job without a heartbeat (``lock_timeout_s``
        is its old name); ``reclaim_every_s``: how often ``claim`` looks for expired
        leases (default half the lease, at most 15 s)."""
        lease = lease_s if lease_s is not None else lock_timeout_s
        lease = DEFAULT_LEASE_S if lease is None else lease
        if max_attempts < 1 or backoff_initial_s < 0 or backoff_max_s < 0 or lease <= 0:
            raise ValueError("JobQueue needs max_attempts >= 1, non-negative backoff and a "
                             "positive lease")
        self.engine = engine
        self.max_attempts = max_attempts
        self.lease_s = float(lease)
        self.lease = self.lock_timeout = timedelta(seconds=lease)
        self.reclaim_every_s = (min(15.0, lease / 2) if reclaim_every_s is None
                                else reclaim_every_s)
        self._next_reclaim = 0.0
        # Exponential backoff with jitter, computed by tenacity's own wait strategy.
        self._wait = wait_exponential_jitter(initial=backoff_initial_s, max=backoff_max_s,
                                             jitter=backoff_initial_s)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._reads = sessionmaker(reads(engine), expire_on_commit=False)  # no BEGIN/ROLLBACK
        self._skip_locked = engine.dialect.name == "postgresql"
        self._listeners: list[Callable[[str], None]] = []

    # -- producing ---------------------------------------------------------------------
    def enqueue(self, kind: str, payload: Mapping[str, Any], *, user_id: str | None = None,
                dedupe_key: str | None = None, delay_s: float = 0.0,
                max_attempts: int | None = None) -> int:
        """Store a job and return its id. While a *queued* job with the same
        ``dedupe_key`` exists, that job's id is returned and nothing is added."""
        for _ in range(3):
            if dedupe_key is not None and (found := self._queued_with(dedupe_key)) is not None:
                return found
            try:
                with self._sessions() as db, db.begin():
                    job_id = self.add(db, kind, payload, user_id=user_id, dedupe_key=dedupe_key,
                                      delay_s=delay_s, max_attempts=max_attempts)
            except IntegrityError:
                continue  # a concurrent enqueue won the dedupe race: return its id
            self.notify(kind)
            assert job_id is not None  # flushed: ``add`` returns the id
            return job_id
        raise RuntimeError(f"could not enqueue {kind!r} with dedupe key {dedupe_key!r}")

    def add(self, db: Session, kind: str, payload: Mapping[str, Any], *,
            user_id: str | None = None, dedupe_key: str | None = None, delay_s: float = 0.0,
            max_attempts: int | None = None, flush: bool = True) -> int | None:
        """Add a job inside the caller's transaction ``db`` (it commits or rolls back
        with whatever else ``db`` writes: the outbox). No dedupe lookup: a key that is
        already queued raises ``IntegrityError`` at flush. Call ``notify(kind)`` after
        the commit to wake this process's workers. ``flush=False`` leaves the row to the
        commit's flush (jobs added together go in one INSERT) and returns None."""
        _check_job(kind, payload, dedupe_key)
        now = utcnow()
        row = JobRow(kind=kind, payload=dict(payload), user_id=user_id, dedupe_key=dedupe_key,
                     status="queued", attempts=0, max_attempts=max_attempts or self.max_attempts,
                     run_after=now + timedelta(seconds=max(0.0, delay_s)),
                     created_at=now, updated_at=now)
        db.add(row)
        if not flush:
            return None
        db.flush()
        return row.id

    def notify(self, kind: str) -> None:
        """Tell this process's listeners (its workers) that a ``kind`` job was committed."""
        for listener in list(self._listeners):
            listener(kind)

    def _queued_with(self, dedupe_key: str) -> int | None:
        with self._reads() as db:
            return db.scalar(select(JobRow.id).where(JobRow.dedupe_key == dedupe_key,
                                                     JobRow.status == "queued"))

    def on_enqueue(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(kind)`` after each job this process enqueues (wakes workers)."""
        self._listeners.append(listener)

    # -- consuming ---------------------------------------------------------------------
    def next_due(self, kinds: Collection[str] | None = None) -> datetime | None:
        """When the earliest queued job of ``kinds`` is due (None: nothing queued). One
        read on the claim index: what an idle worker polls, never a write lock."""
        stmt = select(func.min(JobRow.run_after)).where(JobRow.status == "queued")
        if kinds is not None:
            stmt = stmt.where(JobRow.kind.in_(list(kinds)))
        with self._reads() as db:
            return _aware(db.scalar(stmt))

    def claim(self, worker_id: str, kinds: Collection[str] | None = None, limit: int = 1, *,
              check_first: bool = True) -> list[Job]:
        """Take up to ``limit`` due jobs (oldest due first) for ``worker_id``; each
        claim counts as an attempt. Expired leases are reclaimed first. ``check_first``
        reads before writing (an idle poll never takes a write lock); a caller that
        just saw a due job (``next_due``) skips that read."""
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
        if check_first:
            with self._reads() as db:
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
            log.warning("job %d (%s) finished after its lease expired", job.id, job.kind)
        return ok

    def complete_many(self, jobs: Collection[Job]) -> int:
        """Mark a batch done in one statement; returns how many were still held."""
        held = _held(jobs)
        if not held:
            return 0
        now = utcnow()
        with self._sessions() as db, db.begin():
            done = sum(rowcount(db.execute(
                update(JobRow).where(JobRow.id.in_(ids), JobRow.status == "running",
                                     JobRow.locked_by == owner)
                .values(status="done", finished_at=now, last_error=None, locked_by=None,
                        locked_at=None, updated_at=now)
                .execution_options(synchronize_session=False))) for owner, ids in held.items())
        if done < len(jobs):
            log.warning("%d of %d job(s) finished after their lease expired", len(jobs) - done,
                        len(jobs))
        return done

    def renew(self, worker_id: str, job_ids: Collection[int]) -> int:
        """The heartbeat: extend ``worker_id``'s leases on ``job_ids``; returns how many
        it still held (fewer: a lease had expired and another worker took the job)."""
        if not job_ids:
            return 0
        now = utcnow()
        with self._sessions() as db, db.begin():
            return rowcount(db.execute(
                update(JobRow).where(JobRow.id.in_(list(job_ids)), JobRow.status == "running",
                                     JobRow.locked_by == worker_id)
                .values(locked_at=now, updated_at=now)
                .execution_options(synchronize_session=False)))

    def release(self, jobs: Collection[Job], reason: str = "released by a stopping worker") -> int:
        """Give held jobs back to the queue, due now, the attempt not counted (a worker
        stopping before it finished them): any live worker takes them at once."""
        held = _held(jobs)
        if not held:
            return 0
        now = utcnow()
        with self._sessions() as db, db.begin():
            return sum(rowcount(db.execute(
                update(JobRow).where(JobRow.id.in_(ids), JobRow.status == "running",
                                     JobRow.locked_by == owner)
                .values(status="queued", run_after=now, locked_by=None, locked_at=None,
                        attempts=case((JobRow.attempts > 0, JobRow.attempts - 1), else_=0),
                        last_error=reason, updated_at=now)
                .execution_options(synchronize_session=False))) for owner, ids in held.items())

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
        """Requeue ``running`` jobs whose lease ran out (their worker died or hung past
        its heartbeat); those out of attempts become ``dead``. Returns how many were
        touched."""
        now = utcnow()
        stale = [JobRow.status == "running", JobRow.locked_at < now - self.lease]
        twin = aliased(JobRow)
        has_queued_twin = exists().where(twin.dedupe_key == JobRow.dedupe_key, twin.status == "queued")
        note = "lease expired: the worker stopped before finishing"
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
        with self._reads() as db:
            row = db.get(JobRow, job_id)
            return _job(row) if row is not None else None

    def pending(self, kinds: Collection[str] | None = None, *, include_delayed: bool = False) -> int:
        """Jobs still to do: queued and due (or any queued with ``include_delayed``) plus
        running ones whose lease is live."""
        now = utcnow()
        queued = [JobRow.status == "queued"]
        if not include_delayed:
            queued.append(JobRow.run_after <= now)
        running = and_(JobRow.status == "running", JobRow.locked_at >= now - self.lease)
        stmt = select(func.count(JobRow.id)).where(and_(*queued) | running)
        if kinds is not None:
            stmt = stmt.where(JobRow.kind.in_(list(kinds)))
        with self._reads() as db:
            return int(db.scalar(stmt) or 0)

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """Jobs per status (every status present, zeros included)."""
        stmt = select(JobRow.status, func.count(JobRow.id)).group_by(JobRow.status)
        if kind is not None:
            stmt = stmt.where(JobRow.kind == kind)
        with self._reads() as db:
            found = dict(db.execute(stmt).all())
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def jobs(self, *, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[Job]:
        """The newest jobs, optionally of one status/kind (dashboards, `lastmile jobs`)."""
        stmt = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(JobRow.status == status)
        if kind is not None:
            stmt = stmt.where(JobRow.kind == kind)
        with self._reads() as db:
            return [_job(r) for r in db.scalars(stmt)]

    def retry_now(self, kinds: Collection[str] | None = None) -> int:
        """Make every waiting job due at once (an operator knows the outage is over)."""
        stmt = update(JobRow).where(JobRow.status == "queued").values(run_after=utcnow())
        if kinds is not None:
            stmt = stmt.where(JobRow.kind.in_(list(kinds)))
        with self._sessions() as db, db.begin():
            return rowcount(db.execute(stmt.execution_options(synchronize_session=False)))

    def expedite(self, kinds: Collection[str], within_s: float) -> int:
        """Make queued jobs of ``kinds`` due within ``within_s`` due now (a flush need
        not wait out the indexing linger; retry backoffs stay as they are)."""
        now = utcnow()
        stmt = (update(JobRow).where(JobRow.status == "queued", JobRow.kind.in_(list(kinds)),
                                     JobRow.run_after > now,
                                     JobRow.run_after <= now + timedelta(seconds=within_s))
                .values(run_after=now))
        with self._sessions() as db, db.begin():
            return rowcount(db.execute(stmt.execution_options(synchronize_session=False)))

    def purge_done(self, older_than_s: float) -> int:
        """Delete ``done`` jobs finished more than ``older_than_s`` ago (every turn leaves
        a few; failed and dead ones stay for an operator)."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with self._sessions() as db, db.begin():
            return rowcount(db.execute(delete(JobRow).where(JobRow.status == "done",
                                                            JobRow.finished_at < cutoff)
                                       .execution_options(synchronize_session=False)))


def _check_job(kind: str, payload: Mapping[str, Any], dedupe_key: str | None) -> None:
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


def _held(jobs: Collection[Job]) -> dict[str, list[int]]:
    """Job ids per holder (a batch normally has one)."""
    held: dict[str, list[int]] = {}
    for job in jobs:
        if job.locked_by is not None:
            held.setdefault(job.locked_by, []).append(job.id)
    return held


Handler = Callable[[Job], object]


def open_jobs(engine: Engine | None, settings: Settings) -> tuple[JobQueue | None, Workers | None]:
    """The queue and this process's (not yet started) workers over the store's
    database, configured from ``LASTMILE_JOB_*``; ``(None, None)`` without a SQL engine."""
    if engine is None:
        return None, None
    from memory.workers import Workers

    queue = JobQueue(engine, max_attempts=settings.job_max_attempts,
                     backoff_initial_s=settings.job_backoff_initial_s,
                     backoff_max_s=settings.job_backoff_max_s, lease_s=settings.job_lease_s)
    return queue, Workers(queue, poll_s=settings.job_poll_s,
                          keep_done_s=settings.job_keep_done_days * 86_400)


def __getattr__(name: str) -> Any:
    # The workers live in memory/workers.py (they import this module); the old path stays.
    if name in ("JobWorker", "Workers"):
        from memory import workers

        return getattr(workers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
