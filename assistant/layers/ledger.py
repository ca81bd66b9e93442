"""``LedgerModel``: every call that passes through is priced, budgeted and recorded.

It sits innermost, right on the provider — ``BreakerModel(RetryingModel(LedgerModel(p)))``
— so each retry attempt and each fallback member is its own ledger row, and a budget
reservation is taken per attempt, just before money could be spent. Budget enforcement
lives here rather than in a separate wrapper because both need the same facts (price,
estimate, reported usage) at the same two moments (before the call, after it), and the
settle and the ledger row then commit in one transaction: spend and its audit trail
never disagree. The same record, once written, is the attempt's span and metrics
(``assistant.telemetry.call_finished``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from assistant import telemetry
from assistant.errors import BudgetExceeded, LastmileError, StreamInterrupted
from assistant.layers.resilience import close_quietly
from assistant.providers.base import (
    ChatModel,
    ModelChunk,
    ModelRequest,
    ModelWrapper,
    Usage,
)
from memory.budget import Budget, Hold
from memory.ledger import CallRecord, Ledger, PriceTable, nusd_to_usd

__all__ = ["DEFER_KEY", "DeferredRows", "LedgerModel", "open_accounting"]

log = logging.getLogger(__name__)
#: ``ModelRequest.metadata`` key: a ``DeferredRows`` the turn loop hands in, so a turn's
#: ledger rows commit in the reply's transaction instead of one transaction each.
DEFER_KEY = "ledger_rows"


@dataclass
class _Row:
    model: LedgerModel
    record: CallRecord
    hold: Hold | None
    nusd: int


class DeferredRows:
    """A turn's ledger rows, held until the reply is stored (``write`` inside its
    transaction). Once taken, a row that still arrives (a stream closed late) is written
    at once, as without deferral; ``flush`` writes rows one transaction each."""

    def __init__(self) -> None:
        self._rows: list[_Row] = []
        self._open = True
        self._lock = threading.Lock()

    def add(self, row: _Row) -> bool:
        with self._lock:
            if self._open:
                self._rows.append(row)
            return self._open

    def take(self) -> list[_Row]:
        with self._lock:
            self._open = False
            rows, self._rows = self._rows, []
        return rows

    @staticmethod
    def write(rows: list[_Row], conn: Connection) -> list[tuple[LedgerModel, list[dict]]]:
        """Settle and record ``rows`` in ``conn``'s transaction; the budget alerts to send
        once it commits (``notify``)."""
        alerts = []
        for row in rows:
            if row.hold is not None and row.model.budget is not None:
                alerts.append((row.model, row.model.budget.settle(row.hold, row.nusd, conn)))
            row.model.ledger.record(row.record, conn)
        return alerts

    @staticmethod
    def notify(alerts: list[tuple[LedgerModel, list[dict]]]) -> None:
        for model, found in alerts:
            if found and model.budget is not None:
                model.budget.notify(found)

    @staticmethod
    def flush(rows: list[_Row]) -> None:
        """Each row in its own transaction (a failure is logged, never raised)."""
        for row in rows:
            row.model._write(row.record, row.hold, row.nusd)


class LedgerModel(ModelWrapper):
    """Records one ledger row per call; with a ``Budget``, refuses calls over a cap."""

    def __init__(self, inner: ChatModel, ledger: Ledger, budget: Budget | None = None) -> None:
        super().__init__(inner)
        self.ledger = ledger
        self.budget = budget  # kept even with no cap today: an admin may set one at run time

    def _reserve(self, request: ModelRequest, record: CallRecord) -> Hold | None:
        if self.budget is None or self.inner.provider == "fallback":
            return None  # a caller's own chain: priced per answering member, not held
        price = self.ledger.prices.price(self.inner.label)
        if price is None or price == (0.0, 0.0):
            return None  # free, or unpriced (warned once): nothing to hold
        estimate = PriceTable.nusd(price, self.inner.count_tokens(request.messages), request.max_tokens)
        return self.budget.reserve(record.user_id, estimate, label=self.inner.label)

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        meta = request.metadata
        record = CallRecord(
            provider=self.inner.label, model=self.inner.model or None, status="ok",
            purpose=meta.get("purpose"), user_id=meta.get("user_id"),
            session_key=meta.get("session_id"), turn_id=meta.get("turn_id"))
        try:
            hold = self._reserve(request, record)
        except BudgetExceeded as exc:
            record.status, record.error_kind, record.error = "refused", type(exc).__name__, str(exc)
            record.cost_usd = 0.0
            self._write(record, None, 0)
            raise
        started, started_ns = time.perf_counter(), time.time_ns()
        usage: Usage | None = None
        answered_by = self.inner.label
        iterator: Iterator[ModelChunk] | None = None
        try:
            iterator = iter(self.inner.request(request))
            for chunk in iterator:
                usage = chunk.usage or usage
                answered_by = chunk.provider or answered_by
                if chunk.text and record.first_token_ms is None:
                    record.first_token_ms = (time.perf_counter() - started) * 1000
                yield chunk
        except LastmileError as exc:
            record.status = "interrupted" if isinstance(exc, StreamInterrupted) else "error"
            record.error_kind, record.error = type(exc).__name__, f"{type(exc).__name__}: {exc}"
            raise
        except GeneratorExit:
            record.status, record.error = "cancelled", "the consumer stopped reading"
            raise
        except BaseException as exc:
            record.status, record.error_kind = "error", type(exc).__name__
            record.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            close_quietly(iterator)
            record.latency_ms = (time.perf_counter() - started) * 1000
            record.provider = answered_by
            nusd = self._cost(record, usage, hold)
            deferred = meta.get(DEFER_KEY)
            if not (isinstance(deferred, DeferredRows) and deferred.add(_Row(self, record, hold, nusd))):
                self._write(record, hold, nusd)
            telemetry.call_finished(record, meta, started_ns)

    def _cost(self, record: CallRecord, usage: Usage | None, hold: Hold | None) -> int:
        """Nano-USD to settle: the reported usage priced; with no usage, the reservation
        for a completed reply (it was probably billed) and nothing for a failed one."""
        if usage is not None:
            record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        price = self.ledger.prices.price(record.provider)
        if price is None:
            return hold.nusd if hold and record.status == "ok" else 0
        if usage is None:
            nusd = hold.nusd if hold and record.status == "ok" else 0
        else:
            nusd = PriceTable.nusd(price, usage.prompt_tokens, usage.completion_tokens)
        record.cost_usd = nusd_to_usd(nusd)
        return nusd

    def _write(self, record: CallRecord, hold: Hold | None, nusd: int) -> None:
        """Settle and record in one transaction. A ledger failure is logged, never raised:
        it must not turn a delivered reply into an error (or mask the real one)."""
        alerts: list[dict] = []
        try:
            with self.ledger.engine.begin() as conn:
                if hold is not None and self.budget is not None:
                    alerts = self.budget.settle(hold, nusd, conn)
                self.ledger.record(record, conn)
        except SQLAlchemyError as exc:
            log.error("could not record a call to %s in the ledger: %s", record.provider, exc)
            return
        if alerts and self.budget is not None:
            self.budget.notify(alerts)


def open_accounting(engine: Engine | None, settings: Any) -> tuple[Ledger | None, Budget | None]:
    """The ledger (priced from ``settings.prices``) and budgets on ``engine``'s database."""
    if engine is None:
        return None, None
    return (Ledger(engine, PriceTable(settings.prices)), Budget.from_settings(engine, settings))
