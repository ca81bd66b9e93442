"""Drift alarms: is this week's traffic still the traffic lastmile was tuned on?

A check reads the stored turn records (``messages`` with each reply's
``ReplyRecord`` in ``context``, and the ledger for fallbacks) of two windows — the
recent one and a baseline just before it — and computes the PSI of each signal: input
length, language, topic (MiniLM clusters of the baseline's inputs, plus a "new" bucket
for inputs far from all of them), out-of-scope rate (only with a scope statement),
refusal rate, groundedness, unsupported-sentence rate, fallback rate and latency. A PSI
of 0.25 or more is an alert: it goes to the audit log, a ``drift_reports`` row (the
dashboard's drift panel) and the budget-alert webhook; 0.1–0.25 is a warning (audit and
dashboard only). Why PSI: one number per signal with thresholds teams already know.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, insert, select

from assistant.audit import audit
from assistant.ops import psi as P
from assistant.reply_record import ReplyRecord
from memory.models import DriftReport, Message, ProviderCall, utcnow

__all__ = ["DriftCheck", "Sample", "Signal", "compare", "load_window", "run_drift", "topic_labels"]

log = logging.getLogger(__name__)

#: Phrases of a reply that declines (the model's or a guard's words).
REFUSAL = re.compile(r"\b(I can(?:no|['’])t (?:help|answer|assist|do)|I(?:['’]m| am) (?:sorry|unable|not "
                     r"able)|I won['’]t|I must decline|I can only help)\b", re.IGNORECASE)
#: Minimum items of a signal in each window before its PSI means anything.
MIN_ITEMS = 20


@dataclass(frozen=True)
class Sample:
    """One answered turn as the drift check sees it."""

    text: str
    reply: str
    latency_ms: float | None
    groundedness: float | None
    claims: int  # claim sentences checked
    unsupported: int  # of those, not supported
    fallback: bool


@dataclass(frozen=True)
class Signal:
    """One signal's PSI between the windows, with the figures behind it."""

    name: str
    psi: float | None
    baseline: float | None  # mean or rate in the baseline window
    recent: float | None
    n: tuple[int, int]  # items in (baseline, recent)

    @property
    def level(self) -> str:
        return P.level(self.psi)


@dataclass
class DriftCheck:
    """The outcome of one check; ``level`` is the worst signal's."""

    signals: list[Signal]
    baseline_turns: int
    recent_turns: int
    created_at: datetime = field(default_factory=utcnow)

    @property
    def level(self) -> str:
        levels = {s.level for s in self.signals}
        return "alert" if "alert" in levels else "warn" if "warn" in levels else "ok"

    def shifted(self) -> dict[str, float]:
        """The signals at warn or alert, with their PSI."""
        return {s.name: s.psi for s in self.signals if s.psi is not None and s.level != "ok"}

    def to_dict(self) -> dict[str, Any]:
        return {s.name: {"psi": s.psi, "level": s.level, "baseline": s.baseline, "recent": s.recent,
                         "n": list(s.n)} for s in self.signals}


def load_window(engine: Engine, start: datetime, end: datetime, *, limit: int = 2000) -> list[Sample]:
    """The newest ``limit`` answered turns whose reply was stored in [start, end)."""
    stmt = (select(Message.id, Message.conversation_id, Message.role, Message.content,
                   Message.latency_ms, Message.context, Message.status)
            .where(Message.created_at >= start, Message.created_at < end)
            .order_by(Message.conversation_id, Message.id))
    with engine.connect() as conn:
        rows = list(conn.execute(stmt))
        # One user message served by more than one provider: a fallback (or a restart).
        fallbacks = {turn for turn, n in conn.execute(
            select(ProviderCall.turn_id, func.count(func.distinct(ProviderCall.provider)))
            .where(ProviderCall.started_at >= start - timedelta(minutes=10),
                   ProviderCall.started_at < end, ProviderCall.purpose == "chat",
                   ProviderCall.turn_id.is_not(None))
            .group_by(ProviderCall.turn_id)) if n > 1}
    samples: list[Sample] = []
    question: tuple[int, int, str] | None = None  # (conversation, id, text) of the last user message
    for mid, conv, role, content, latency, context, status in rows:
        if role == "user":
            question = (conv, mid, content)
            continue
        if role != "assistant" or question is None or question[0] != conv or status == "error":
            continue
        record = ReplyRecord.from_dict(context)
        claims = [c for c in record.checks or () if c.claim]
        bad = [c for c in claims if (c.status or c.verdict) not in ("supported", "partial")]
        samples.append(Sample(text=question[2], reply=content, latency_ms=latency,
                              groundedness=record.groundedness if record.groundedness is not None
                              else (record.confidence if record.checks is not None else None),
                              claims=len(claims), unsupported=len(bad),
                              fallback=question[1] in fallbacks))
        question = None
    return samples[-limit:]


def topic_labels(base: Sequence[str], recent: Sequence[str], *, encode: Callable[[list[str]], Any],
                 k: int = 8, seed: int = 0) -> tuple[list[str], list[str]]:
    """Cluster labels of both windows' inputs: k-means on the baseline's MiniLM vectors;
    an input less similar to every centre than 95% of the baseline's inputs to theirs is
    ``new`` (a topic the baseline did not have)."""
    vb = np.asarray(encode(list(base)), dtype=np.float32)
    vr = np.asarray(encode(list(recent)), dtype=np.float32)
    k = max(2, min(k, min(len(vb), len(vr)) // 25))  # few items: few clusters (PSI noise)
    rng = np.random.default_rng(seed)
    centres = vb[rng.choice(len(vb), size=k, replace=False)]
    for _ in range(20):
        assign = np.argmax(vb @ centres.T, axis=1)
        moved = np.stack([vb[assign == j].mean(axis=0) if np.any(assign == j) else centres[j]
                          for j in range(k)])
        moved /= np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
        if np.allclose(moved, centres, atol=1e-5):
            break
        centres = moved
    floor = float(np.quantile(np.max(vb @ centres.T, axis=1), 0.05))

    def labels(vectors: np.ndarray) -> list[str]:
        sims = vectors @ centres.T
        return [f"t{int(np.argmax(s))}" if float(np.max(s)) >= floor else "new" for s in sims]

    return labels(vb), labels(vr)


def _numeric(name: str, base: list[float], recent: list[float]) -> Signal:
    ok = len(base) >= MIN_ITEMS and len(recent) >= MIN_ITEMS
    return Signal(name, P.psi_numeric(base, recent) if ok else None,
                  round(float(np.mean(base)), 4) if base else None,
                  round(float(np.mean(recent)), 4) if recent else None, (len(base), len(recent)))


def _rate(name: str, base: list[bool], recent: list[bool]) -> Signal:
    ok = len(base) >= MIN_ITEMS and len(recent) >= MIN_ITEMS
    return Signal(name, P.psi_rate(base, recent) if ok else None,
                  round(sum(base) / len(base), 4) if base else None,
                  round(sum(recent) / len(recent), 4) if recent else None, (len(base), len(recent)))


def _categorical(name: str, base: list[str], recent: list[str]) -> Signal:
    ok = len(base) >= MIN_ITEMS and len(recent) >= MIN_ITEMS
    top = max(set(base), key=base.count) if base else None

    def share(xs: list[str]) -> float | None:
        return round(xs.count(top) / len(xs), 4) if xs and top is not None else None

    return Signal(name, P.psi_categorical(base, recent) if ok else None, share(base), share(recent),
                  (len(base), len(recent)))


def compare(base: Sequence[Sample], recent: Sequence[Sample], *,
            encode: Callable[[list[str]], Any] | None = None,
            in_scope: Callable[[str], bool] | None = None) -> DriftCheck:
    """Every signal's PSI between two windows. ``encode`` (MiniLM) enables the topic
    signal; ``in_scope`` (the scope guard) the out-of-scope rate."""
    b, r = list(base), list(recent)
    signals = [
        _numeric("input_length", [len(s.text) for s in b], [len(s.text) for s in r]),
        _categorical("language", [P.guess_language(s.text) for s in b],
                     [P.guess_language(s.text) for s in r])]
    if encode is not None and len(b) >= MIN_ITEMS and len(r) >= MIN_ITEMS:
        tb, tr = topic_labels([s.text for s in b], [s.text for s in r], encode=encode)
        signals.append(_categorical("topic", tb, tr))
    if in_scope is not None:
        signals.append(_rate("out_of_scope", [not in_scope(s.text) for s in b],
                             [not in_scope(s.text) for s in r]))

    def sentences(xs: list[Sample]) -> list[bool]:  # one item per checked claim sentence
        return [i < s.unsupported for s in xs for i in range(s.claims)]

    signals += [
        _rate("refusal", [bool(REFUSAL.search(s.reply)) for s in b],
              [bool(REFUSAL.search(s.reply)) for s in r]),
        _numeric("groundedness", [s.groundedness for s in b if s.groundedness is not None],
                 [s.groundedness for s in r if s.groundedness is not None]),
        _rate("unsupported_sentences", sentences(b), sentences(r)),
        _rate("fallback", [s.fallback for s in b], [s.fallback for s in r]),
        _numeric("latency_ms", [s.latency_ms for s in b if s.latency_ms is not None],
                 [s.latency_ms for s in r if s.latency_ms is not None])]
    return DriftCheck(signals, baseline_turns=len(b), recent_turns=len(r))


def windows(now: datetime, recent_hours: float, baseline_days: float) -> tuple[datetime, datetime, datetime]:
    """(baseline start, recent start, end): the baseline ends where the recent window starts."""
    split = now - timedelta(hours=recent_hours)
    return split - timedelta(days=baseline_days), split, now


def run_drift(engine: Engine, settings: Any, *, now: datetime | None = None,
              encode: Callable[[list[str]], Any] | None = None,
              notify: Callable[[list[dict[str, Any]]], None] | None = None) -> DriftCheck | None:
    """Check, store the report and raise alerts. ``None`` when either window has fewer
    than ``drift_min_turns`` turns (nothing is stored: too little to compare)."""
    start, split, end = windows(now or utcnow(), settings.drift_recent_hours, settings.drift_baseline_days)
    base = load_window(engine, start, split)
    recent = load_window(engine, split, end)
    if min(len(base), len(recent)) < settings.drift_min_turns:
        return None
    if encode is None:
        from memory.minilm import get_encoder

        encode = get_encoder().encode
    check = compare(base, recent, encode=encode, in_scope=_scope_check(settings))
    with engine.begin() as conn:
        conn.execute(insert(DriftReport).values(
            created_at=check.created_at, level=check.level, recent_turns=check.recent_turns,
            baseline_turns=check.baseline_turns, metrics=check.to_dict()))
    if check.level != "ok":
        event = {"psi": check.shifted(),
                 "recent_turns": check.recent_turns, "baseline_turns": check.baseline_turns,
                 "window": {"baseline_from": start.isoformat(), "recent_from": split.isoformat(),
                            "until": end.isoformat()}}
        audit(f"drift.{check.level}", **event)
        if check.level == "alert" and notify is not None:
            notify([{"event": "drift.alert", **event}])
    return check


def _scope_check(settings: Any) -> Callable[[str], bool] | None:
    from guardrails import ScopeGuard

    guard = ScopeGuard.from_settings(settings)
    return None if guard is None else (lambda text: guard.check(text).in_scope)
