"""Prometheus instruments for turns, provider calls and the process's queues.

Why its own registry (not prometheus-client's global one): ``/metrics`` must show only
what lastmile chose to expose — no message text and no user ids unless the operator
named ``user_id`` in ``LASTMILE_METRICS_LABELS`` — and tests build many assistants in
one process. Counters and histograms are fed from the typed turn state at the turn's
end (``observe_turn``) and from each ledger record (``observe_call``), both called by
``assistant.telemetry``; gauges that describe shared state (breakers, the job outbox,
the review queue) are read when scraped (``StateCollector``), so they are right on
every replica whoever changed them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from assistant.providers.base import walk
from assistant.turn import TurnState
from memory.models import Job, ReviewItem, utcnow

__all__ = ["OPTIONAL_LABELS", "Instruments", "StateCollector", "cache_lookup", "configure",
           "current", "observe_call", "observe_turn", "render"]

log = logging.getLogger(__name__)

#: Labels an operator may add (``LASTMILE_METRICS_LABELS``); none by default.
OPTIONAL_LABELS = ("user_id", "destination")
_TURN_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_STAGE_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SHARE = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_BREAKER = {"closed": 0, "half_open": 1, "open": 2}
_REMOTE_PREFIXES = ("openai", "anthropic")


class TurnOutcome(Protocol):
    """What the turn loop knows at its end (``orchestrator._Outcome`` is one)."""

    provider: str
    status: str
    error: str | None
    first_token_ms: float | None
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int


class CallFacts(Protocol):
    """One provider attempt as the ledger recorded it (``memory.ledger.CallRecord``)."""

    provider: str
    status: str
    purpose: str | None
    user_id: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    error_kind: str | None
    latency_ms: float | None
    first_token_ms: float | None


class Instruments:
    """The counters and histograms, with the optional labels chosen once per process."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.extra = tuple(label for label in OPTIONAL_LABELS if label in extra)
        r = self.registry = CollectorRegistry(auto_describe=True)
        x = list(self.extra)
        self.turn = Histogram("lastmile_turn_duration_seconds", "Whole turns, by answering provider.",
                              ["provider", "status", *x], buckets=_TURN_S, registry=r)
        self.stage = Histogram("lastmile_turn_stage_duration_seconds", "Time per stage of a turn.",
                               ["stage", "provider"], buckets=_STAGE_S, registry=r)
        self.ttft = Histogram("lastmile_turn_ttft_seconds", "Time to a turn's first reply text.",
                              ["provider"], buckets=_TURN_S, registry=r)
        self.call = Histogram("lastmile_provider_call_duration_seconds",
                              "Each provider attempt (retries and fallback members apart).",
                              ["provider", "purpose", "status"], buckets=_TURN_S, registry=r)
        self.call_ttft = Histogram("lastmile_provider_ttft_seconds", "First text of a provider attempt.",
                                   ["provider"], buckets=_TURN_S, registry=r)
        self.errors = Counter("lastmile_provider_errors_total", "Failed provider attempts by error kind.",
                              ["provider", "kind"], registry=r)
        self.fallbacks = Counter("lastmile_fallbacks_total",
                                 "Turns answered by another provider than the first one tried.",
                                 ["from_provider", "to_provider"], registry=r)
        self.cache = Counter("lastmile_cache_lookups_total", "Reply-cache lookups.",
                             ["kind", "outcome"], registry=r)
        self.tokens = Counter("lastmile_tokens_total", "Tokens by purpose (every ledger row).",
                              ["purpose", "direction", *x], registry=r)
        self.cost = Counter("lastmile_cost_usd_total", "Spend by purpose (priced ledger rows).",
                            ["purpose", *x], registry=r)
        self.claims = Counter("lastmile_claim_sentences_total", "Claim sentences the citation check read.",
                              registry=r)
        self.unsupported = Counter("lastmile_unsupported_sentences_total",
                                   "Claim sentences it found unsupported by their sources.", registry=r)
        self.unsupported_share = Histogram("lastmile_turn_unsupported_share",
                                           "Per checked turn: share of claim sentences unsupported.",
                                           buckets=_SHARE, registry=r)
        self.groundedness = Histogram("lastmile_turn_groundedness", "Groundedness of checked turns.",
                                      buckets=_SHARE, registry=r)


_lock = threading.Lock()
_current = Instruments()


def configure(labels: str | Sequence[str] = ()) -> Instruments:
    """Choose the optional labels (a process-wide choice; a new one restarts the series)."""
    global _current
    wanted = [s.strip() for s in labels.split(",")] if isinstance(labels, str) else list(labels)
    with _lock:
        if tuple(label for label in OPTIONAL_LABELS if label in wanted) != _current.extra:
            _current = Instruments(wanted)
        return _current


def current() -> Instruments:
    return _current


def _provider(label: str | None) -> str:
    return label or "unavailable"


def _destination(provider: str) -> str:
    return "remote" if provider.split(":", 1)[0] in _REMOTE_PREFIXES else "local"


def _extras(m: Instruments, *, user_id: str | None, destination: str) -> dict[str, str]:
    values = {"user_id": user_id or "", "destination": destination}
    return {label: values[label] for label in m.extra}


def observe_turn(state: TurnState, out: TurnOutcome, *, first_provider: str | None) -> None:
    """Count one finished turn from its state (stages, checks) and outcome."""
    m = _current
    provider = _provider(out.provider)
    extras = _extras(m, user_id=state.user_id, destination=state.destination)
    m.turn.labels(provider=provider, status=out.status, **extras).observe(out.latency_ms / 1000)
    for stage, ms in state.stages_ms.items():
        m.stage.labels(stage=stage, provider=provider).observe(ms / 1000)
    if out.first_token_ms is not None:
        m.ttft.labels(provider=provider).observe(out.first_token_ms / 1000)
    if first_provider and first_provider != out.provider and out.status == "ok":
        m.fallbacks.labels(from_provider=first_provider, to_provider=provider).inc()
    claims = [c for c in state.citation_checks or () if c.claim]
    if claims:
        bad = sum(1 for c in claims if c.verdict != "supported")
        m.claims.inc(len(claims))
        m.unsupported.inc(bad)
        m.unsupported_share.observe(bad / len(claims))
    if state.groundedness is not None:
        m.groundedness.observe(state.groundedness)


def observe_call(record: CallFacts) -> None:
    """Count one provider attempt from its ledger record."""
    m = _current
    provider, purpose = _provider(record.provider), record.purpose or "other"
    m.call.labels(provider=provider, purpose=purpose, status=record.status).observe(
        (record.latency_ms or 0.0) / 1000)
    if record.first_token_ms is not None:
        m.call_ttft.labels(provider=provider).observe(record.first_token_ms / 1000)
    if record.status not in ("ok", "cancelled"):
        m.errors.labels(provider=provider, kind=record.error_kind or record.status).inc()
    extras = _extras(m, user_id=record.user_id, destination=_destination(provider))
    m.tokens.labels(purpose=purpose, direction="input", **extras).inc(record.prompt_tokens)
    m.tokens.labels(purpose=purpose, direction="output", **extras).inc(record.completion_tokens)
    if record.cost_usd:
        m.cost.labels(purpose=purpose, **extras).inc(record.cost_usd)


def cache_lookup(kind: str, outcome: str) -> None:
    """One reply-cache lookup (``outcome``: hit, miss or bypass)."""
    _current.cache.labels(kind=kind, outcome=outcome).inc()


class StateCollector(Collector):
    """Gauges read at scrape time from one assistant's parts: breaker states, the job
    outbox (depth and age of the oldest due job per kind), the index backlog and the
    review queue. A database that does not answer leaves those gauges out of this
    scrape (logged once per outage) rather than failing it."""

    def __init__(self, model: Callable[[], object | None], engine: Any) -> None:
        self._model, self._engine = model, engine  # model: the chain now, None without one
        self._failing = False

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield self._breakers()
        if self._engine is None:
            return
        try:
            families = list(self._queues())
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database does
            if not self._failing:
                log.warning("metrics: queue gauges left out, the database did not answer: %s",
                            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            self._failing = True
            return
        self._failing = False
        yield from families

    def _breakers(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("lastmile_breaker_state",
                                   "Circuit breaker per provider: 0 closed, 1 half open, 2 open.",
                                   labels=["provider"])
        try:
            chain = self._model()
        except Exception:  # noqa: BLE001 - no model (a missing file, a bad key): no breakers
            chain = None
        for node in walk(chain) if chain is not None else ():
            breaker = getattr(node, "breaker", None)
            if breaker is not None:
                family.add_metric([breaker.name], _BREAKER.get(breaker.state, 2))
        return family

    def _queues(self) -> Iterable[GaugeMetricFamily]:
        now = utcnow()
        with self._engine.connect() as conn:
            queued = conn.execute(
                select(Job.kind, func.count(Job.id), func.min(Job.created_at))
                .where(Job.status == "queued", Job.run_after <= now).group_by(Job.kind)).all()
            backlog = conn.scalar(select(func.count(Job.id)).where(
                Job.kind == "index", Job.status.in_(("queued", "running"))))
            review = conn.scalar(select(func.count(ReviewItem.id)).where(ReviewItem.status == "pending"))
        depth = GaugeMetricFamily("lastmile_outbox_depth", "Background jobs due and waiting, by kind.",
                                  labels=["kind"])
        age = GaugeMetricFamily("lastmile_outbox_oldest_age_seconds",
                                "Age of the oldest waiting job, by kind.", labels=["kind"])
        for kind, count, oldest in queued:
            depth.add_metric([kind], int(count))
            age.add_metric([kind], _age_s(now, oldest))
        yield depth
        yield age
        yield GaugeMetricFamily("lastmile_index_backlog", "Messages waiting to be indexed (index jobs).",
                                value=int(backlog or 0))
        yield GaugeMetricFamily("lastmile_review_queue_size", "Review items pending.",
                                value=int(review or 0))


def _age_s(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite hands naive datetimes back
        then = then.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


def render(state: Collector | None = None) -> bytes:
    """The exposition text: the instruments, then ``state``'s gauges."""
    out = generate_latest(_current.registry)
    if state is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(state)
        out += generate_latest(registry)
    return out
