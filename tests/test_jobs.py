"""The durable job queue on real SQLite and PostgreSQL: restart, concurrency, backoff,
dead letters, stale locks, dedupe."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from assistant.errors import ProviderUnavailable, RateLimited
from memory.db import open_engine
from memory.jobs import Job, JobQueue, JobWorker
from memory.models import Job as JobRow
from memory.models import utcnow


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = open_engine(database_url)
    yield engine
    engine.dispose()


def test_enqueue_claim_complete(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine)
    job_id = queue.enqueue("facts", {"message_id": 7}, user_id="ana")
    assert queue.counts()["queued"] == 1
    [job] = queue.claim("w1")
    assert (job.id, job.kind, job.payload, job.user_id) == (job_id, "facts", {"message_id": 7}, "ana")
    assert (job.status, job.attempts, job.locked_by) == ("running", 1, "w1")
    assert queue.claim("w2") == []  # nobody else gets it
    assert queue.complete(job)
    stored = queue.get(job_id)
    assert stored is not None and stored.status == "done" and stored.finished_at is not None
    assert stored.locked_by is None


def test_claim_filters_kinds_and_respects_run_after(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine)
    queue.enqueue("summary", {"n": 1})
    later = queue.enqueue("facts", {"n": 2}, delay_s=60)
    now = queue.enqueue("facts", {"n": 3})
    assert [j.id for j in queue.claim("w", kinds=["facts"], limit=5)] == [now]
    assert queue.pending(["facts"]) == 1  # the running one; the delayed one is not due
    assert queue.pending(["facts"], include_delayed=True) == 2
    assert queue.retry_now(["facts"]) == 1
    assert [j.id for j in queue.claim("w", kinds=["facts"])] == [later]
    assert queue.claim("w", kinds=[]) == []


def test_bad_input_is_refused(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine)
    with pytest.raises(ValueError, match="kind"):
        queue.enqueue("", {})
    with pytest.raises(TypeError, match="payload"):
        queue.enqueue("facts", ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        queue.enqueue("facts", {"when": object()})
    with pytest.raises(ValueError, match="dedupe_key"):
        queue.enqueue("facts", {}, dedupe_key="x" * 201)
    assert queue.counts()["queued"] == 0


def test_dedupe_only_while_queued(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine)
    first = queue.enqueue("summary", {"v": 1}, dedupe_key="summary:ana:s1")
    assert queue.enqueue("summary", {"v": 2}, dedupe_key="summary:ana:s1") == first
    assert queue.counts()["queued"] == 1
    [job] = queue.claim("w")
    # Once it runs, new work under the same key is a new job (it may need newer data).
    second = queue.enqueue("summary", {"v": 3}, dedupe_key="summary:ana:s1")
    assert second != first
    # The running one fails: the queued newer job covers it, so it is not requeued twice.
    assert queue.fail(job, ProviderUnavailable("down")) == "failed"
    assert queue.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 1, "dead": 0}


def test_dedupe_holds_under_concurrent_enqueues(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine)
    ids: list[int] = []
    barrier = threading.Barrier(6)

    def enqueue() -> None:
        barrier.wait()
        ids.append(queue.enqueue("facts", {}, dedupe_key="same"))

    threads = [threading.Thread(target=enqueue) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and queue.counts()["queued"] == 1


def test_failure_backs_off_then_dead_after_max_attempts(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine, max_attempts=3, backoff_initial_s=10, backoff_max_s=1000)
    job_id = queue.enqueue("facts", {})
    delays = []
    for attempt in (1, 2):
        [job] = queue.claim("w")
        assert job.attempts == attempt
        before = utcnow()
        assert queue.fail(job, ProviderUnavailable("provider down")) == "queued"
        stored = queue.get(job_id)
        assert stored is not None and stored.status == "queued"
        assert stored.last_error == "ProviderUnavailable: provider down"
        delays.append((stored.run_after - before).total_seconds())
        assert queue.claim("w") == []  # not due yet: it waits out the backoff
        queue.retry_now()
    # exponential: 10 * 2**(n-1) plus up to 10 s of jitter
    assert 10 <= delays[0] <= 21 and 20 <= delays[1] <= 31
    [job] = queue.claim("w")
    assert queue.fail(job, ValueError("still broken")) == "dead"
    stored = queue.get(job_id)
    assert stored is not None and stored.status == "dead" and stored.attempts == 3
    assert queue.claim("w") == []


def test_backoff_grows_with_jitter_and_honours_retry_after(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine, backoff_initial_s=1, backoff_max_s=30)
    waits = [queue.backoff(n) for n in range(1, 8)]
    for n, wait in enumerate(waits, start=1):
        assert min(30, 2 ** (n - 1)) <= wait <= 30  # capped at max
    assert len({round(queue.backoff(3), 6) for _ in range(20)}) > 1  # jittered
    queue.enqueue("facts", {})
    [job] = queue.claim("w")
    before = utcnow()
    queue.fail(job, RateLimited("slow down", retry_after=120))
    stored = queue.get(job.id)
    assert stored is not None and (stored.run_after - before).total_seconds() >= 119


def test_permanent_failure(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine)
    queue.enqueue("facts", {})
    [job] = queue.claim("w")
    assert queue.fail(job, "unusable payload", permanent=True) == "failed"
    assert queue.counts()["failed"] == 1 and queue.pending() == 0


def test_stale_lock_is_reclaimed(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine, lock_timeout_s=30, max_attempts=2, reclaim_every_s=0)
    job_id = queue.enqueue("facts", {})
    [crashed] = queue.claim("dead-worker")
    assert queue.claim("w2") == []  # lock still fresh
    with engine.begin() as conn:  # the worker died 31 s ago
        conn.execute(update(JobRow).values(locked_at=utcnow() - timedelta(seconds=31)))
    [job] = queue.claim("w2")
    assert job.id == job_id and job.attempts == 2 and job.locked_by == "w2"
    assert not queue.complete(crashed)  # the dead worker's late answer is refused
    assert queue.complete(job)
    # Out of attempts while crashed -> dead instead of looping forever.
    poison = queue.enqueue("facts", {"poison": True})
    for _ in range(2):
        queue.claim("w3")
        with engine.begin() as conn:
            conn.execute(update(JobRow).where(JobRow.id == poison)
                         .values(locked_at=utcnow() - timedelta(seconds=31)))
    queue.reclaim_stale()
    stored = queue.get(poison)
    assert stored is not None and stored.status == "dead" and "lease expired" in (stored.last_error or "")


def test_worker_survives_restart(database_url: str) -> None:
    engine = open_engine(database_url)
    queue = JobQueue(engine)
    job_id = queue.enqueue("facts", {"n": 1})
    first = JobWorker(queue)  # no handler for "facts" in this process
    first.start()
    first.close()
    engine.dispose()
    # A new process on the same database finishes it.
    engine = open_engine(database_url)
    seen: list[Job] = []
    worker = JobWorker(JobQueue(engine), {"facts": seen.append}, poll_s=0.05).start()
    try:
        assert worker.flush(10)
        assert [j.id for j in seen] == [job_id]
        stored = worker.queue.get(job_id)
        assert stored is not None and stored.status == "done"
    finally:
        worker.close()
        engine.dispose()


def test_worker_retries_outage_and_never_dies(engine, caplog) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine, backoff_initial_s=0.05, backoff_max_s=0.2)
    calls: Counter[str] = Counter()

    def flaky(job: Job) -> None:
        calls[job.payload["name"]] += 1
        if job.payload["name"] == "outage" and calls["outage"] < 3:
            raise ProviderUnavailable("provider down")
        if job.payload["name"] == "bug":
            raise KeyError("handler bug")

    worker = JobWorker(queue, {"work": flaky}, poll_s=0.02)
    with caplog.at_level(logging.WARNING, logger="memory.jobs"):
        outage = queue.enqueue("work", {"name": "outage"})
        bug = queue.enqueue("work", {"name": "bug"}, max_attempts=2)
        assert worker.flush(20, include_delayed=True)
        fine = queue.enqueue("work", {"name": "fine"})  # the worker is still alive
        assert worker.flush(10)
    worker.close()
    assert calls == {"outage": 3, "bug": 2, "fine": 1}
    assert [queue.get(i).status for i in (outage, bug, fine)] == ["done", "dead", "done"]  # type: ignore[union-attr]
    bug_logs = [r for r in caplog.records if "raised" in r.getMessage()]
    assert bug_logs and all(r.exc_info for r in bug_logs)  # a bug is logged with traceback
    assert any("ProviderUnavailable" in r.getMessage() and not r.exc_info for r in caplog.records)


def test_flush_times_out_when_work_cannot_finish(engine) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue(engine)
    release = threading.Event()
    worker = JobWorker(queue, {"slow": lambda job: release.wait(5)}, poll_s=0.02)
    queue.enqueue("slow", {})
    started = time.monotonic()
    assert worker.flush(0.3) is False
    assert time.monotonic() - started < 2
    release.set()
    assert worker.flush(10) is True
    worker.close()


@pytest.mark.postgres
def test_many_workers_never_run_a_job_twice(postgres_url: str) -> None:
    """4 worker threads (each its own claim transactions) x 200 jobs on PostgreSQL:
    SKIP LOCKED hands every job to exactly one of them."""
    engine = open_engine(postgres_url)
    queue = JobQueue(engine)
    with engine.begin() as conn:
        conn.execute(update(JobRow).values(status="done"))  # earlier tests' leftovers
    ids = {queue.enqueue("count", {"i": i}) for i in range(200)}
    runs: Counter[int] = Counter()
    by_worker: Counter[str] = Counter()
    lock = threading.Lock()

    def handler(job: Job) -> None:
        with lock:
            runs[job.id] += 1
            by_worker[job.locked_by or ""] += 1

    workers = [JobWorker(JobQueue(engine), {"count": handler}, worker_id=f"w{i}", poll_s=0.01,
                         batch=3) for i in range(4)]
    for w in workers:
        w.start()
    try:
        assert workers[0].flush(60)
    finally:
        for w in workers:
            w.close()
        engine.dispose()
    assert set(runs) == ids and set(runs.values()) == {1}
    assert len(by_worker) >= 2  # the work really was shared


def test_many_workers_on_sqlite_never_run_a_job_twice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = open_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    queue = JobQueue(engine)
    ids = {queue.enqueue("count", {"i": i}) for i in range(100)}
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    def handler(job: Job) -> None:
        with lock:
            runs[job.id] += 1

    workers = [JobWorker(queue, {"count": handler}, poll_s=0.01, batch=2) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        assert workers[0].flush(60)
    finally:
        for w in workers:
            w.close()
        engine.dispose()
    assert set(runs) == ids and set(runs.values()) == {1}
