"""The job workers of one process: lanes that claim and run jobs, and a heartbeat.

Why lanes: a ``facts`` job may wait seconds on a model, and indexing must not wait
behind it (a turn is recallable only once indexed), so each lane is its own thread
claiming its own kinds: ``jobs`` (one job at a time) and ``index`` (batches).

Why a heartbeat: a claim is a short lease (``JobQueue.lease_s``), not a long lock; the
heartbeat thread renews the leases of the jobs in hand every third of a lease, so a
long job keeps its claim while a dead process's claims run out and any live process
requeues them (``reclaim_stale``, one of the heartbeat's chores). Chores registered with
``every`` run there too (e.g. marking turns whose process died as interrupted).

Why polling: a job another replica queued wakes nobody here, so an idle lane asks the
database when its next job is due (``JobQueue.next_due``: one read on the claim index)
at least every ``poll_s`` and sleeps until then; a job committed in this process wakes
its lane at once (``JobQueue.notify``).

The contract for whoever runs the process (``lastmile serve``, ``lastmile worker``):

- ``start()`` starts every lane and the heartbeat (idempotent; a stopped ``Workers``
  stays stopped).
- ``stop(deadline_s)`` (alias ``close(timeout)``): lanes stop claiming at once; each
  finishes the job in hand if it can within ``deadline_s``; a job still running after
  that is handed back to the queue (``release``: due now, its attempt not counted), so
  another worker takes it without waiting out the lease. Returns True when every lane
  thread has ended (so no thread is inside a model any more). Safe to call again: a
  later call waits again and releases what is left.
- ``release()`` hands back the jobs in hand now (their threads, if still running, will
  find their claim gone and log it); ``held()`` lists them.
- ``flush(timeout)`` waits until no job of this process's kinds is due or running.

Each job (or batch) runs inside an OpenTelemetry span, ``job {kind}``, current in its
thread, so the provider calls it makes hang below it; without a configured tracer
provider (``assistant.telemetry``) the API's spans cost nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from assistant.errors import RuntimeFailure
from memory.jobs import Handler, Job, JobQueue
from memory.models import utcnow

__all__ = ["BatchHandler", "JobWorker", "Workers"]

log = logging.getLogger(__name__)
#: A handler for a batch of jobs of one kind (e.g. indexing: one embedding pass).
BatchHandler = Callable[[Sequence[Job]], object]
PURGE_EVERY_S = 3600.0
_tracer = trace.get_tracer("lastmile.jobs")


@contextmanager
def _job_span(jobs: Sequence[Job]) -> Iterator[Span]:
    """The span one job or batch runs in (attributes: kind, ids, attempt; no payload)."""
    with _tracer.start_as_current_span(f"job {jobs[0].kind}", attributes={
            "lastmile.job.kind": jobs[0].kind, "lastmile.job.count": len(jobs),
            "lastmile.job.ids": [job.id for job in jobs],
            "lastmile.job.attempt": max(job.attempts for job in jobs)},
            record_exception=False, set_status_on_exception=False) as span:  # no error text
        yield span


def _failed(span: Span, exc: BaseException) -> None:
    span.set_attribute("error.type", type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


class JobWorker:
    """One lane: a thread that claims the kinds it has handlers for and runs them.

    It claims only kinds it has a handler for, so processes with different handlers
    share one table. A handler that raises is retried later (with backoff) — a
    ``RuntimeFailure`` (outage) is logged briefly, anything else with its traceback —
    and the lane never dies of a handler's error. Alone (tests, embedders) it starts
    lazily: at ``register`` when such jobs wait, else at the first local enqueue; inside
    ``Workers`` it starts with them and its leases are renewed by their heartbeat.
    """

    def __init__(self, queue: JobQueue, handlers: Mapping[str, Handler] | None = None, *,
                 worker_id: str | None = None, poll_s: float = 1.0, batch: int = 1,
                 autostart: bool = True) -> None:
        self.queue = queue
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.batch_handlers: dict[str, tuple[BatchHandler, int]] = {}
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:10]}"
        self.poll_s = poll_s
        self.batch = batch
        self.autostart = autostart
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._held: dict[int, Job] = {}
        self._next_due_s: float | None = None  # seconds from the last poll to the next due job
        queue.on_enqueue(self._on_enqueue)

    @property
    def kinds(self) -> list[str]:
        return [*self.handlers, *self.batch_handlers]

    def register(self, kind: str, handler: Handler) -> None:
        """Handle ``kind`` jobs one at a time from now on."""
        self.handlers[kind] = handler
        self._registered(kind)

    def register_batch(self, kind: str, handler: BatchHandler, max_batch: int = 64) -> None:
        """Handle ``kind`` jobs in batches of up to ``max_batch`` (all that are due)."""
        self.batch_handlers[kind] = (handler, max(1, max_batch))
        self._registered(kind)

    def _registered(self, kind: str) -> None:
        if self.autostart and self.queue.pending([kind], include_delayed=True):
            self.start()
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> JobWorker:
        """Start the thread (idempotent; never after ``close``)."""
        with self._lock:
            if not self.running and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=f"lastmile-{self.worker_id}",
                                                daemon=True)
                self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def _on_enqueue(self, kind: str) -> None:
        if kind in self.handlers or kind in self.batch_handlers:
            if self.autostart:
                self.start()
            self._wake.set()

    def held(self) -> list[Job]:
        """The jobs this lane has claimed and not yet finished."""
        with self._lock:
            return list(self._held.values())

    def run_once(self) -> int:
        """Claim and run what is due now, in this thread; returns how many jobs ran."""
        kinds = self.kinds
        if not kinds or self._stop.is_set():
            return 0
        due = self.queue.next_due(kinds)
        if due is None or due > utcnow():
            self._next_due_s = None if due is None else (due - utcnow()).total_seconds()
            return 0
        ran = 0
        for kind, (handler, size) in list(self.batch_handlers.items()):
            jobs = self.queue.claim(self.worker_id, [kind], size, check_first=False)
            if jobs:
                self._run_batch(handler, jobs)
                ran += len(jobs)
        if self.handlers and not self._stop.is_set():
            for job in self.queue.claim(self.worker_id, list(self.handlers), self.batch,
                                        check_first=False):
                self._execute(job)
                ran += 1
        return ran

    def _hold(self, jobs: Sequence[Job]) -> None:
        with self._lock:
            self._held.update((job.id, job) for job in jobs)

    def _drop(self, jobs: Sequence[Job]) -> None:
        with self._lock:
            for job in jobs:
                self._held.pop(job.id, None)

    def _execute(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        self._hold([job])
        try:
            with _job_span([job]) as span:
                try:
                    if handler is None:
                        raise LookupError(f"no handler for job kind {job.kind!r}")
                    handler(job)
                except Exception as exc:
                    _failed(span, exc)
                    raise
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
        finally:
            self._drop([job])

    def _run_batch(self, handler: BatchHandler, jobs: list[Job]) -> None:
        self._hold(jobs)
        try:
            with _job_span(jobs) as span:
                try:
                    handler(jobs)
                except Exception as exc:
                    _failed(span, exc)
                    raise
        except Exception as exc:
            quiet = isinstance(exc, RuntimeFailure)
            for job in jobs:
                self.queue.fail(job, exc)
            log.log(logging.WARNING if quiet else logging.ERROR,
                    "a batch of %d %s job(s) failed: %s", len(jobs), jobs[0].kind, exc,
                    exc_info=not quiet)
        else:
            self.queue.complete_many(jobs)
        finally:
            self._drop(jobs)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._next_due_s = None
            try:
                ran = self.run_once()
            except Exception:
                log.exception("job worker %s could not claim jobs", self.worker_id)
                ran = 0
            if not ran:
                wait = self.poll_s if self._next_due_s is None else min(
                    self.poll_s, max(0.01, self._next_due_s))
                self._wake.wait(wait)
                self._wake.clear()

    def flush(self, timeout: float = 30.0, *, include_delayed: bool = False) -> bool:
        """Block until no job of this lane's kinds is due or running (delayed retries
        count too with ``include_delayed``). Starts the lane if needed; False on timeout."""
        return _wait_idle([self], self.queue, self.kinds, timeout, include_delayed)

    def stop_claiming(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
        return not self.running

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the job in hand (unfinished work stays queued for next time)."""
        self.stop_claiming()
        self.join(timeout)


def _wait_idle(lanes: Sequence[JobWorker], queue: JobQueue, kinds: list[str], timeout: float,
               include_delayed: bool) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not kinds or queue.pending(kinds, include_delayed=include_delayed) == 0:
            return True
        if time.monotonic() >= deadline or any(lane._stop.is_set() for lane in lanes):
            return False
        for lane in lanes:
            if lane.kinds:
                lane.start()
                lane.wake()
        time.sleep(0.02)


class Workers:
    """Every job worker of one process: the lanes, their heartbeat and its chores.

    See the module docstring for the contract (start / stop(deadline) / release)."""

    def __init__(self, queue: JobQueue, *, worker_id: str | None = None, poll_s: float = 1.0,
                 keep_done_s: float = 7 * 86_400.0) -> None:
        self.queue = queue
        self.worker_id = worker_id or (
            f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self.poll_s = poll_s
        self.lanes = {name: JobWorker(queue, worker_id=f"{self.worker_id}/{name}", poll_s=poll_s,
                                      autostart=False) for name in ("jobs", "index")}
        self.heartbeat_s = max(0.05, min(queue.lease_s / 3, 5.0))
        self._chores: list[list] = []  # [interval_s, task, next_run (monotonic)]
        self.every(queue.reclaim_every_s, self._reclaim)
        self.every(PURGE_EVERY_S, lambda: queue.purge_done(keep_done_s))
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Kinds whose jobs are written with a linger (``flush`` makes them due at once).
        self.lingering: dict[str, float] = {}

    # -- what runs here ---------------------------------------------------------------
    def register(self, kind: str, handler: Handler, *, lane: str = "jobs") -> None:
        """Run ``kind`` jobs one at a time on ``lane``."""
        self.lanes[lane].register(kind, handler)

    def register_batch(self, kind: str, handler: BatchHandler, *, max_batch: int = 64,
                       lane: str = "index", linger_s: float = 0.0) -> None:
        """Run ``kind`` jobs in batches on ``lane``; ``linger_s``: how long after its
        write such a job becomes due (``flush`` need not wait for it)."""
        self.lanes[lane].register_batch(kind, handler, max_batch)
        if linger_s > 0:
            self.lingering[kind] = linger_s

    def every(self, interval_s: float, task: Callable[[], object]) -> None:
        """Run ``task()`` on the heartbeat thread about every ``interval_s`` seconds
        (its errors are logged; a chore never stops the heartbeat)."""
        self._chores.append([max(0.05, interval_s), task, 0.0])

    @property
    def handlers(self) -> dict[str, object]:
        """Every kind this process runs, with its handler."""
        found: dict[str, object] = {}
        for lane in self.lanes.values():
            found.update(lane.handlers)
            found.update({k: h for k, (h, _) in lane.batch_handlers.items()})
        return found

    # -- lifecycle --------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(lane.running for lane in self.lanes.values())

    def start(self) -> Workers:
        """Start every lane and the heartbeat (idempotent; never after ``stop``)."""
        with self._lock:
            if self._stop.is_set():
                return self
            for lane in self.lanes.values():
                lane.start()
            if self._beat is None or not self._beat.is_alive():
                self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                              name=f"lastmile-{self.worker_id}/heartbeat")
                self._beat.start()
        return self

    def held(self) -> list[Job]:
        return [job for lane in self.lanes.values() for job in lane.held()]

    def release(self) -> int:
        """Hand the jobs in hand back to the queue now (see the module docstring)."""
        jobs = self.held()
        released = self.queue.release(jobs) if jobs else 0
        if released:
            log.warning("released %d job(s) still running at shutdown: %s", released,
                        ", ".join(f"{j.id} ({j.kind})" for j in jobs))
        return released

    def stop(self, deadline_s: float = 30.0) -> bool:
        """Stop claiming, let the jobs in hand finish within ``deadline_s``, hand back
        the rest; True when every lane thread has ended."""
        end = time.monotonic() + max(0.0, deadline_s)
        for lane in self.lanes.values():
            lane.stop_claiming()
        done = all([lane.join(end - time.monotonic()) for lane in self.lanes.values()])
        if not done:
            self.release()
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(max(0.1, min(2.0, end - time.monotonic())))
        return done

    def close(self, timeout: float = 30.0) -> None:
        """``stop(timeout)`` (the name every closeable part of an Assistant has)."""
        self.stop(timeout)

    # -- for tests and shutdown ---------------------------------------------------------
    def run_once(self) -> int:
        """Run what is due now on every lane, in this thread."""
        return sum(lane.run_once() for lane in self.lanes.values())

    def flush(self, timeout: float = 30.0, *, include_delayed: bool = False) -> bool:
        """Block until no job of this process's kinds is due or running; jobs held back
        by a linger are made due first. Starts the workers if needed; False on timeout."""
        if self.lingering:
            self.queue.expedite(list(self.lingering), max(self.lingering.values()) + 1.0)
        if self.handlers and not self._stop.is_set():
            self.start()
        return _wait_idle(list(self.lanes.values()), self.queue, list(self.handlers), timeout,
                          include_delayed)

    # -- the heartbeat thread -------------------------------------------------------------
    def _reclaim(self) -> None:
        if self.queue.reclaim_stale():
            for lane in self.lanes.values():
                lane.wake()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            for lane in self.lanes.values():
                held = lane.held()
                try:
                    kept = self.queue.renew(lane.worker_id, [j.id for j in held]) if held else 0
                except Exception:
                    log.warning("could not renew job leases of %s", lane.worker_id, exc_info=True)
                    continue
                if kept < len(held):
                    log.warning("%s lost the lease of %d job(s) (another worker may rerun them)",
                                lane.worker_id, len(held) - kept)
            now = time.monotonic()
            for chore in self._chores:
                if now >= chore[2]:
                    chore[2] = now + chore[0]
                    try:
                        chore[1]()
                    except Exception:
                        log.warning("background chore failed; retried later", exc_info=True)

