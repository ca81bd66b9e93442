"""The figures behind the admin dashboard, as plain data frames.

Kept apart from the Gradio layout so each figure can be tested against a real
database: latency per stage per turn, tokens and cost over time, provider health and
breaker state, fallback rate, cache hit rate, groundedness, review-queue size.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from assistant.providers.base import walk
from assistant.reply_record import ReplyRecord
from memory.models import Message, ProviderCall

__all__ = ["breaker_states", "fallback_rate", "groundedness", "latency_frame", "spend_frame",
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
