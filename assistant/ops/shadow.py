"""Shadow runs: what would a candidate configuration have answered to real traffic?

The recorded user turns since a date are read from the production database (read only)
and replayed, user by user and session by session, through a candidate ``Assistant`` —
another provider chain, another system prompt — whose own history lives in a scratch
data dir. Each user is replayed under their own id, so the candidate's memory of a
user holds only that user's turns (the per-user scoping of production); the users'
documents are read from production through the same user-scoped retrieval. Nothing is
written to production: users never see a shadow reply.

Per turn it sets production's reply beside the candidate's: divergence (1 − the word
sequence similarity of the two texts), groundedness, latency, cost, status.
"""

from __future__ import annotations

import difflib
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from assistant.errors import ConfigurationError, InputRejected
from assistant.reply_record import ReplyRecord
from assistant.settings import Settings
from memory.models import Conversation, Message, ProviderCall

__all__ = ["Recorded", "ShadowTurn", "divergence", "recorded_turns", "run_shadow", "summarise"]


@dataclass(frozen=True)
class Recorded:
    """A user turn as production stored it, with production's reply."""

    user_id: str
    session: str
    message_id: int
    text: str
    reply: str
    status: str
    provider: str
    latency_ms: float
    groundedness: float | None
    cost_usd: float


@dataclass
class ShadowTurn:
    user_id: str
    session: str
    message_id: int
    divergence: float
    production: dict[str, Any]
    candidate: dict[str, Any]


def divergence(a: str, b: str) -> float:
    """0 for the same words in the same order, 1 for nothing in common."""
    return round(1 - difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio(), 4)


def _grounded(context: Any) -> float | None:
    record = ReplyRecord.from_dict(context)
    return record.groundedness if record.groundedness is not None else (
        record.confidence if record.checks is not None else None)


def recorded_turns(engine: Engine, since: datetime, *, user_id: str | None = None,
                   limit: int | None = None) -> list[Recorded]:
    """User turns stored since ``since`` that got a reply, by user, session and order."""
    stmt = (select(Message.id, Message.user_id, Conversation.key, Message.role, Message.content,
                   Message.status, Message.provider, Message.latency_ms, Message.context)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.created_at >= since, Message.role.in_(("user", "assistant")))
            .order_by(Message.user_id, Message.conversation_id, Message.id))
    if user_id is not None:
        stmt = stmt.where(Message.user_id == user_id)
    with engine.connect() as conn:
        rows = list(conn.execute(stmt))
        costs = dict(conn.execute(select(ProviderCall.turn_id, func.sum(ProviderCall.cost_usd))
                                  .where(ProviderCall.started_at >= since, ProviderCall.turn_id.is_not(None))
                                  .group_by(ProviderCall.turn_id)).all())
    out: list[Recorded] = []
    pending: Any = None
    for row in rows:
        if row.role == "user":
            pending = row
        elif pending is not None and (pending.user_id, pending.key) == (row.user_id, row.key):
            out.append(Recorded(pending.user_id, pending.key, pending.id, pending.content, row.content,
                                row.status, row.provider or "", float(row.latency_ms or 0.0),
                                _grounded(row.context), float(costs.get(pending.id) or 0.0)))
            pending = None
    return out[:limit] if limit else out


def run_shadow(recorded: list[Recorded], production: Settings, *, candidate: str,
               prompt: str | None = None, documents: Any = None,
               on_turn: Callable[[ShadowTurn], None] | None = None) -> list[ShadowTurn]:
    """Replay ``recorded`` through the candidate chain in a scratch data dir."""
    from assistant.orchestrator import Assistant
    from memory.db import open_engine

    with tempfile.TemporaryDirectory(prefix="lastmile-shadow-") as scratch:
        update: dict[str, Any] = {"providers": candidate, "data_dir": Path(scratch), "database_url": None,
                                  "chroma_url": None, "canary_suite": None, "drift_every_s": 0,
                                  "cache_mode": "off"}
        if prompt is not None:
            update["system_prompt"] = prompt
        try:
            cfg = Settings.model_validate({**production.model_dump(), **update})
        except ValueError as exc:
            raise ConfigurationError(f"candidate configuration: {exc}") from None
        _check_chain(cfg)
        out: list[ShadowTurn] = []
        with Assistant(cfg, documents=documents) as bot:
            engine = open_engine(cfg.resolved_database_url)
            try:
                for turn in recorded:
                    shadow = _replay(bot, engine, turn)
                    out.append(shadow)
                    if on_turn is not None:
                        on_turn(shadow)
            finally:
                engine.dispose()
    return out


def _check_chain(cfg: Settings) -> None:
    """Every provider of the candidate chain exists and builds (a typo fails here, before
    a single turn is replayed, not as a column of failed replies)."""
    from assistant.errors import LastmileError
    from assistant.providers import build_provider

    for spec in cfg.provider_specs:
        try:
            build_provider(spec, cfg)
        except LastmileError as exc:
            raise ConfigurationError(f"candidate {spec!r}: {exc}") from None


def _replay(bot: Any, engine: Engine, turn: Recorded) -> ShadowTurn:
    prod = {"status": turn.status, "provider": turn.provider, "latency_ms": round(turn.latency_ms, 1),
            "groundedness": turn.groundedness, "cost_usd": round(turn.cost_usd, 6)}
    try:
        reply = bot.chat(turn.text, session_id=turn.session, user_id=turn.user_id, cache=False)
    except InputRejected as exc:
        cand = {"status": "rejected", "provider": "-", "latency_ms": 0.0, "groundedness": None,
                "cost_usd": 0.0, "error": exc.user_message}
        return ShadowTurn(turn.user_id, turn.session, turn.message_id, 1.0, prod, cand)
    with engine.connect() as conn:
        cost = conn.scalar(select(func.coalesce(func.sum(ProviderCall.cost_usd), 0.0))
                           .where(ProviderCall.turn_id == reply.user_message_id)) or 0.0
        context = conn.scalar(select(Message.context).where(Message.id == reply.message_id))
    cand = {"status": reply.status, "provider": reply.provider, "latency_ms": round(reply.latency_ms, 1),
            "groundedness": _grounded(context), "cost_usd": round(float(cost), 6)}
    return ShadowTurn(turn.user_id, turn.session, turn.message_id, divergence(turn.reply, reply.text),
                      prod, cand)


def _side(turns: list[ShadowTurn], side: str) -> dict[str, Any]:
    rows = [getattr(t, side) for t in turns]
    latency = sorted(r["latency_ms"] for r in rows)
    grounded = [r["groundedness"] for r in rows if r["groundedness"] is not None]

    def pct(q: float) -> float:
        return round(latency[min(len(latency) - 1, int(q * len(latency)))], 1) if latency else 0.0

    return {"turns": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
            "latency_ms_p50": pct(0.5), "latency_ms_p95": pct(0.95),
            "groundedness_mean": round(statistics.fmean(grounded), 4) if grounded else None,
            "grounded_turns": len(grounded), "cost_usd": round(sum(r["cost_usd"] for r in rows), 6),
            "providers": sorted({r["provider"] for r in rows})}


def summarise(turns: list[ShadowTurn]) -> dict[str, Any]:
    """Production and candidate side by side, and how far their answers diverge."""
    scores = [t.divergence for t in turns]
    return {"production": _side(turns, "production"), "candidate": _side(turns, "candidate"),
            "divergence": {"mean": round(statistics.fmean(scores), 4) if scores else None,
                           "over_half": sum(s > 0.5 for s in scores),
                           "users": len({t.user_id for t in turns})},
            "turns": [asdict(t) for t in turns]}

