"""Drift checks and canaries as durable jobs, scheduled by every process's workers.

A heartbeat chore (``Workers.every``) looks at the newest ``drift_reports`` /
``canary_runs`` row: when it is older than the interval (and, for drift, both windows
hold enough turns) it queues one job with a fixed dedupe key, so however many replicas
run workers, one of them runs the check and the rest see its row. The job handlers do
the work on the ``jobs`` lane, never on a turn's path. Alerts reuse the budget alerts'
webhook sender (``Budget.notify``: a background POST that never blocks).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, insert, select

from assistant.audit import audit
from assistant.errors import ConfigurationError
from memory.models import CanaryRun, DriftReport, Message, aware, utcnow

if TYPE_CHECKING:
    from memory.budget import Budget
    from memory.jobs import Job
    from memory.workers import Workers

__all__ = ["CANARY_JOB", "DRIFT_JOB", "run_canary", "schedule"]

log = logging.getLogger(__name__)
DRIFT_JOB, CANARY_JOB = "drift", "canary"
#: How often the chores ask the database whether a check is due.
CHECK_EVERY_S = 60.0


def _older_than(engine: Engine, column: Any, interval_s: float) -> bool:
    with engine.connect() as conn:
        newest = aware(conn.scalar(select(func.max(column))))
    return newest is None or utcnow() - newest >= timedelta(seconds=interval_s)


def _enough_turns(engine: Engine, settings: Any) -> bool:
    from assistant.ops.drift import windows

    start, split, end = windows(utcnow(), settings.drift_recent_hours, settings.drift_baseline_days)
    with engine.connect() as conn:
        counts = [conn.scalar(select(func.count()).select_from(Message).where(
            Message.role == "assistant", Message.created_at >= a, Message.created_at < b)) or 0
            for a, b in ((start, split), (split, end))]
    return min(counts) >= settings.drift_min_turns


def schedule(workers: Workers, engine: Engine, settings: Any, budget: Budget | None) -> None:
    """Register the drift and canary handlers and the chores that queue them."""
    queue = workers.queue
    notify = budget.notify if budget is not None else None
    if settings.drift_every_s > 0:
        def drift(job: Job) -> None:
            from assistant.ops.drift import run_drift

            run_drift(engine, settings, notify=notify)

        def drift_due() -> None:
            if _older_than(engine, DriftReport.created_at, settings.drift_every_s) and _enough_turns(
                    engine, settings):
                queue.enqueue(DRIFT_JOB, {}, dedupe_key=DRIFT_JOB, max_attempts=3)

        workers.register(DRIFT_JOB, drift)
        workers.every(min(CHECK_EVERY_S, settings.drift_every_s), drift_due)
    if settings.canary_suite is not None:
        def canary(job: Job) -> None:
            run_canary(engine, settings, notify=notify)

        def canary_due() -> None:
            if _older_than(engine, CanaryRun.created_at, settings.canary_every_s):
                queue.enqueue(CANARY_JOB, {}, dedupe_key=CANARY_JOB, max_attempts=3)

        workers.register(CANARY_JOB, canary)
        workers.every(min(CHECK_EVERY_S, settings.canary_every_s), canary_due)


def run_canary(engine: Engine, settings: Any, *, notify: Any = None) -> dict[str, Any]:
    """Run the canary suite once (scratch data dir), store a ``canary_runs`` row, audit
    and alert on failures. A suite that cannot be read is stored as one failed run."""
    from assistant.ops.evals import run_suite
    from assistant.ops.suite import load_suite

    begun = time.perf_counter()
    try:
        suite = load_suite(settings.canary_suite)
        report = run_suite(suite, settings)
    except ConfigurationError as exc:
        report = {"suite": str(settings.canary_suite), "passed": 0, "failed": 1,
                  "error": str(exc), "results": []}
    failing = [r["key"] for r in report["results"] if not r["passed"]]
    slim = [{k: r[k] for k in ("key", "passed", "failures", "latency_ms", "cost_usd", "groundedness")}
            for r in report["results"]]
    with engine.begin() as conn:
        conn.execute(insert(CanaryRun).values(
            created_at=utcnow(), suite=str(report["suite"])[:200], passed=report["passed"],
            failed=report["failed"], duration_ms=round((time.perf_counter() - begun) * 1000, 1),
            results={"turns": slim, "error": report.get("error")}))
    if report["failed"]:
        event = {"suite": report["suite"], "failed": report["failed"], "passed": report["passed"],
                 "failing": failing, "error": report.get("error")}
        audit("canary.failed", **event)
        if notify is not None:
            notify([{"event": "canary.failed", **event}])
    return report
