"""The figures behind the admin dashboard, as plain data frames.

Kept apart from the Gradio layout so each figure can be tested against a real
database: latency per stage per turn (or per time bucket once there are many), tokens and cost
per day, provider health and breaker state, fallback rate, cache hit rate,
groundedness, review-queue size, drift checks and canary runs. Axes are numbers or
times, never strings (a string axis sorts 1, 10, 11, 2).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from assistant.providers.base import walk
from assistant.reply_record import ReplyRecord
from memory.models import CanaryRun, DriftReport, Message, ProviderCall

__all__ = ["breaker_states", "canary_frame", "daily", "drift_frame", "fallback_rate", "groundedness",
           "latency_frame", "latency_series", "latest_drift", "paid_calls", "spend_frame",
           "summary_numbers"]

STAGES = ("guards", "context", "model", "verification", "storage")


def latency_frame(engine: Engine, *, limit: int = 100) -> pd.DataFrame:
    """One row per (turn, stage) for the newest ``limit`` replies, oldest first.

    Replies record their stage timings in ``ReplyRecord.stages_ms``; older replies
    without them show their whole latency as the model stage.
    """
    stmt = (select(Message.id, Message.latency_ms, Message.context).where(Message.role == "assistant")
            .order_by(Message.id.desc()).limit(limit))
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        replies = list(conn.execute(stmt))
    for turn, (mid, latency, context) in enumerate(reversed(replies), start=1):
        stages = ReplyRecord.from_dict(context).stages_ms or ({"model": latency} if latency else {})
        for stage, ms in stages.items():
            rows.append({"turn": turn, "message": mid, "stage": stage, "ms": float(ms or 0)})
    return pd.DataFrame(rows, columns=["turn", "message", "stage", "ms"])


def spend_frame(engine: Engine, *, by: str = "user") -> pd.DataFrame:
    """Tokens and cost per UTC day and ``by`` (user or purpose), from the ledger."""
    column = {"user": ProviderCall.user_id, "purpose": ProviderCall.purpose,
              "provider": ProviderCall.provider}[by]
    stmt = (select(ProviderCall.day, func.coalesce(column, "-").label(by),
                   func.coalesce(func.sum(ProviderCall.prompt_tokens), 0),
                   func.coalesce(func.sum(ProviderCall.completion_tokens), 0),
                   func.coalesce(func.sum(ProviderCall.cost_usd), 0.0))
            .group_by(ProviderCall.day, column).order_by(ProviderCall.day))
    with engine.connect() as conn:
        rows = [{"day": d, by: k, "tokens": int(p or 0) + int(c or 0), "cost_usd": float(usd or 0.0)}
                for d, k, p, c, usd in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=["day", by, "tokens", "cost_usd"])


def _breakers(model: object) -> list[Any]:
    """Every circuit breaker in a model chain, in chain order."""
    return [breaker for node in walk(model) if (breaker := getattr(node, "breaker", None)) is not None]


def breaker_states(model: object) -> pd.DataFrame:
    """Provider, breaker state and counts, for the health table."""
    rows = []
    for breaker in _breakers(model):
        snap = breaker.snapshot()
        rows.append({"provider": breaker.name, "state": snap.get("state"),
                     "failures": snap.get("consecutive_failures", snap.get("failures", 0)),
                     "last_error": snap.get("last_error") or ""})
    return pd.DataFrame(rows, columns=["provider", "state", "failures", "last_error"])


def fallback_rate(engine: Engine) -> float:
    """Share of turns that needed more than one provider (a fallback or a restart)."""
    stmt = (select(ProviderCall.turn_id, func.count(func.distinct(ProviderCall.provider)))
            .where(ProviderCall.turn_id.is_not(None), ProviderCall.purpose == "chat")
            .group_by(ProviderCall.turn_id))
    with engine.connect() as conn:
        counts = [n for _, n in conn.execute(stmt)]
    return sum(1 for n in counts if n > 1) / len(counts) if counts else 0.0


def groundedness(engine: Engine, *, limit: int = 500) -> pd.DataFrame:
    """Groundedness of recent grounded replies (``ReplyRecord.groundedness``, else the
    ``confidence`` grounding stored, which is groundedness capped by the answering model)."""
    stmt = (select(Message.context).where(Message.role == "assistant")
            .order_by(Message.id.desc()).limit(limit))
    with engine.connect() as conn:
        records = [ReplyRecord.from_dict(c) for (c,) in conn.execute(stmt)]
    scores = [r.confidence if r.groundedness is None else r.groundedness for r in records]
    bins = Counter(round(s, 1) for s in scores if s is not None)
    return pd.DataFrame([{"score": k, "replies": v} for k, v in sorted(bins.items())],
                        columns=["score", "replies"])


def summary_numbers(engine: Engine) -> dict[str, Any]:
    """Headline counts for the top of the dashboard."""
    with engine.connect() as conn:
        turns = conn.scalar(select(func.count()).select_from(Message).where(Message.role == "user"))
        failed = conn.scalar(select(func.count()).select_from(Message).where(
            Message.role == "assistant", Message.status.in_(("error", "incomplete"))))
        spend = conn.scalar(select(func.coalesce(func.sum(ProviderCall.cost_usd), 0.0)))
    return {"turns": int(turns or 0), "failed_replies": int(failed or 0),
            "spend_usd": float(spend or 0.0), "fallback_rate": fallback_rate(engine)}


# --- issue 16: axes that read at a glance; issue 15: drift and canaries ------------------

#: Up to this many turns the latency plot shows one bar group per turn; beyond, time buckets.
PER_TURN_MAX = 60
_BUCKETS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86_400, 7 * 86_400)


def _bucket_s(span_s: float, buckets: int) -> int:
    """The smallest round bucket (1 min … 1 week) that keeps the plot at ``buckets`` bars."""
    return next((b for b in _BUCKETS_S if span_s / b <= buckets), _BUCKETS_S[-1])


def _naive_utc(values: Any) -> pd.Series:
    return pd.to_datetime(pd.Series(values), utc=True).dt.tz_localize(None)


def latency_series(engine: Engine, *, limit: int = 1000, buckets: int = 40) -> tuple[pd.DataFrame, str]:
    """The latency plot's frame and its x column: ``turn`` (1, 2, 3 … as numbers, never
    strings) for up to ``PER_TURN_MAX`` replies; else ``time`` — the mean ms per stage
    per time bucket (sized so at most ``buckets`` bars show), with ``turns`` per bucket."""
    frame = latency_frame(engine, limit=limit)
    if frame.empty or frame["turn"].max() <= PER_TURN_MAX:
        return frame.astype({"turn": "int64", "ms": "float64"}), "turn"
    with engine.connect() as conn:
        stamps = dict(conn.execute(select(Message.id, Message.created_at)
                                   .where(Message.id.in_(frame["message"].unique().tolist()))).all())
    frame["time"] = _naive_utc(frame["message"].map(stamps))
    span = (frame["time"].max() - frame["time"].min()).total_seconds()
    size = _bucket_s(span, buckets)
    frame["time"] = frame["time"].dt.floor(f"{size}s")
    out = (frame.groupby(["time", "stage"], as_index=False)
           .agg(ms=("ms", "mean"), turns=("message", "nunique")).sort_values(["time", "stage"]))
    out["ms"] = out["ms"].round(1)
    return out.reset_index(drop=True), "time"


def daily(frame: pd.DataFrame) -> pd.DataFrame:
    """A per-day frame with ``day`` as dates (a time axis), sorted."""
    out = frame.copy()
    out["day"] = pd.to_datetime(out["day"], format="%Y-%m-%d")
    out = out.astype({c: "float64" if c == "cost_usd" else "int64" for c in ("tokens", "cost_usd")
                      if c in out.columns})
    return out.sort_values("day").reset_index(drop=True)


def paid_calls(engine: Engine) -> int:
    """Provider calls that cost anything (a local or scripted model costs nothing)."""
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(ProviderCall)
                               .where(ProviderCall.cost_usd > 0)) or 0)


def drift_frame(engine: Engine, *, limit: int = 200) -> pd.DataFrame:
    """PSI per signal per drift check (oldest first): the drift panel's plot."""
    stmt = (select(DriftReport.created_at, DriftReport.metrics)
            .order_by(DriftReport.created_at.desc()).limit(limit))
    with engine.connect() as conn:
        rows = [{"time": at, "signal": name, "psi": float(m["psi"])}
                for at, metrics in conn.execute(stmt) for name, m in (metrics or {}).items()
                if isinstance(m, dict) and m.get("psi") is not None]
    frame = pd.DataFrame(rows, columns=["time", "signal", "psi"]).astype({"psi": "float64"})
    frame["time"] = _naive_utc(frame["time"])  # a time axis, even empty
    return frame.sort_values(["time", "signal"]).reset_index(drop=True)


def latest_drift(engine: Engine) -> dict[str, Any] | None:
    """The newest drift check: when, its level, and each signal's figures."""
    with engine.connect() as conn:
        row = conn.execute(select(DriftReport.created_at, DriftReport.level, DriftReport.recent_turns,
                                  DriftReport.baseline_turns, DriftReport.metrics)
                           .order_by(DriftReport.created_at.desc()).limit(1)).first()
    if row is None:
        return None
    return {"at": row.created_at, "level": row.level, "recent_turns": row.recent_turns,
            "baseline_turns": row.baseline_turns, "metrics": dict(row.metrics or {})}


def canary_frame(engine: Engine, *, limit: int = 200) -> pd.DataFrame:
    """Canary runs (oldest first): time, suite, passed, failed, pass rate, duration."""
    stmt = (select(CanaryRun.created_at, CanaryRun.suite, CanaryRun.passed, CanaryRun.failed,
                   CanaryRun.duration_ms).order_by(CanaryRun.created_at.desc()).limit(limit))
    with engine.connect() as conn:
        rows = [{"time": at, "suite": suite, "passed": int(p), "failed": int(f),
                 "pass_rate": round(p / (p + f), 4) if p + f else 0.0, "duration_s": round(ms / 1000, 1)}
                for at, suite, p, f, ms in conn.execute(stmt)]
    frame = pd.DataFrame(rows, columns=["time", "suite", "passed", "failed", "pass_rate", "duration_s"]
                         ).astype({"passed": "int64", "failed": "int64", "pass_rate": "float64"})
    frame["time"] = _naive_utc(frame["time"])  # a time axis, even empty
    return frame.sort_values("time").reset_index(drop=True)
