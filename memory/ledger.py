"""The cost ledger: one ``provider_calls`` row per provider attempt, priced, and queried.

Costs come from the tokens the provider *reported* (the final chunk's ``Usage``), priced
by a ``PriceTable`` of USD per million tokens per ``provider:model`` glob. Money is kept
in integer nano-USD wherever it is summed against a cap, so caps compare exactly.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine, Select, case, func, insert, select

from assistant.providers import registry
from memory.models import BudgetAlert, Conversation, ProviderCall, utcnow

__all__ = ["DEFAULT_PRICES", "FREE_PROVIDERS", "GROUPS", "CallRecord", "Ledger", "PriceTable", "nusd_to_usd",
           "today"]

log = logging.getLogger(__name__)

#: USD per 1M (input, output) tokens; examples, overridden by ``LASTMILE_PRICES``. Each
#: provider's registry entry carries its own (``assistant.providers.registry``); this is
#: the table at import, a ``PriceTable`` reads the registry when it is made.
DEFAULT_PRICES: dict[str, tuple[float, float]] = registry.default_prices()
#: Providers that run here (or nowhere) cost nothing: the registry's non-remote ones
#: (read live by ``PriceTable.price``; this is the set at import).
FREE_PROVIDERS = frozenset(n for n in registry.names() if registry.is_free(n))
GROUPS = {"user": ProviderCall.user_id, "day": ProviderCall.day, "purpose": ProviderCall.purpose,
          "provider": ProviderCall.provider}


def today() -> str:
    """The budget day: the UTC date, so every server agrees on when a day ends."""
    return datetime.now(UTC).date().isoformat()


def nusd_to_usd(nusd: int) -> float:
    return nusd / 1e9


class PriceTable:
    """``provider:model`` → (input, output) USD per 1M tokens; exact keys beat globs,
    configured entries beat built-in ones, earlier globs beat later ones."""

    def __init__(self, prices: Mapping[str, Sequence[float]] | None = None, *,
                 defaults: Mapping[str, Sequence[float]] | None = None) -> None:
        if defaults is None:
            defaults = registry.default_prices()
        merged = {**{k: tuple(v) for k, v in (prices or {}).items()}}
        for key, value in defaults.items():
            merged.setdefault(key, tuple(value))
        # tuple(v) is tuple[float, ...] to mypy; each price entry is an (input, output) pair.
        self.prices: dict[str, tuple[float, float]] = merged  # type: ignore[assignment]
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def price(self, label: str) -> tuple[float, float] | None:
        """Prices for a ``provider:model`` label; ``None`` (warned once) if unknown."""
        provider = label.partition(":")[0]
        if registry.is_free(provider):
            return (0.0, 0.0)
        if label in self.prices:
            return self.prices[label]
        for pattern, value in self.prices.items():
            if fnmatch.fnmatchcase(label, pattern):
                return value
        with self._lock:
            if label not in self._warned:
                self._warned.add(label)
                log.warning("no price for %s: its calls are recorded without a cost and are not "
                            "held to budgets; add it to LASTMILE_PRICES", label)
        return None

    @staticmethod
    def nusd(price: tuple[float, float], prompt_tokens: int, completion_tokens: int) -> int:
        """Cost in nano-USD, rounded up (a cap must never be undercounted)."""
        # USD per 1M tokens == 1000 nano-USD per token; round() absorbs float fuzz first.
        return math.ceil(round((prompt_tokens * price[0] + completion_tokens * price[1]) * 1000, 3))


@dataclass
class CallRecord:
    """What ``LedgerModel`` knows about one attempt."""

    provider: str
    status: str  # ok / error / interrupted / cancelled / refused
    model: str | None = None
    purpose: str | None = None
    user_id: str | None = None
    session_key: str | None = None
    turn_id: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None
    error_kind: str | None = None
    latency_ms: float | None = None
    first_token_ms: float | None = None
    started_at: datetime = field(default_factory=utcnow)


class Ledger:
    """Writes and reads the ledger on the conversation database."""

    def __init__(self, engine: Engine, prices: PriceTable | None = None) -> None:
        self.engine = engine
        self.prices = prices or PriceTable()

    def record(self, call: CallRecord, conn: Connection | None = None) -> None:
        """Insert one row (in ``conn``'s transaction when given, else its own)."""
        values = asdict(call)
        values["day"] = call.started_at.astimezone(UTC).date().isoformat()
        if call.user_id and call.session_key:
            values["conversation_id"] = (
                select(Conversation.id).where(Conversation.user_id == call.user_id,
                                              Conversation.key == call.session_key)
                .scalar_subquery())
        if conn is not None:
            conn.execute(insert(ProviderCall).values(**values))
            return
        with self.engine.begin() as own:
            own.execute(insert(ProviderCall).values(**values))

    def calls(self, *, user_id: str | None = None, turn_id: int | None = None) -> list[dict]:
        """Ledger rows, oldest first, as plain dicts."""
        stmt = select(ProviderCall.__table__).order_by(ProviderCall.id)
        if user_id is not None:
            stmt = stmt.where(ProviderCall.user_id == user_id)
        if turn_id is not None:
            stmt = stmt.where(ProviderCall.turn_id == turn_id)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    def turn_costs(self, user_id: str, turn_ids: Iterable[int]) -> dict[int, float]:
        """USD per turn (every attempt, retry and re-ask of it), for reply captions."""
        ids = list(turn_ids)
        if not ids:
            return {}
        stmt = (select(ProviderCall.turn_id, func.coalesce(func.sum(ProviderCall.cost_usd), 0.0))
                .where(ProviderCall.user_id == user_id, ProviderCall.turn_id.in_(ids))
                .group_by(ProviderCall.turn_id))
        with self.engine.connect() as conn:
            return {int(t): float(c or 0.0) for t, c in conn.execute(stmt) if t is not None}

    def spend(self, user_id: str | None = None, since: date | str | None = None) -> float:
        """Total cost in USD (unpriced calls count as 0), optionally for one user / from a day."""
        stmt = select(func.coalesce(func.sum(ProviderCall.cost_usd), 0.0))
        stmt = _filtered(stmt, user_id, since)
        with self.engine.connect() as conn:
            return float(conn.scalar(stmt) or 0.0)

    def usage_report(self, group_by: Iterable[str] = ("user", "day", "purpose"), *,
                     since: date | str | None = None, user_id: str | None = None) -> list[dict]:
        """Calls, tokens, cost, failures and refusals per group, ordered by the groups."""
        keys = list(group_by)
        unknown = set(keys) - set(GROUPS)
        if unknown:
            raise ValueError(f"cannot group by {sorted(unknown)}; choose from {sorted(GROUPS)}")
        cols = [GROUPS[k].label(k) for k in keys]
        failed = ProviderCall.status.notin_(("ok", "refused"))
        stmt = select(
            *cols, func.count(ProviderCall.id).label("calls"),
            func.coalesce(func.sum(ProviderCall.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(ProviderCall.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(ProviderCall.cost_usd), 0.0).label("cost_usd"),
            func.sum(case((failed, 1), else_=0)).label("failures"),
            func.sum(case((ProviderCall.status == "refused", 1), else_=0)).label("refused"),
        ).group_by(*cols).order_by(*cols)
        stmt = _filtered(stmt, user_id, since)
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(stmt)]
        for row in rows:
            row.update({k: int(row[k] or 0) for k in ("calls", "prompt_tokens", "completion_tokens",
                                                      "failures", "refused")})
            row["cost_usd"] = round(float(row["cost_usd"]), 9)
        return rows

    def alerts(self) -> list[dict]:
        """Budget alerts, newest first, for a dashboard."""
        stmt = select(BudgetAlert.__table__).order_by(BudgetAlert.id.desc())
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]


_Stmt = TypeVar("_Stmt", bound=Select)


def _filtered(stmt: _Stmt, user_id: str | None, since: date | str | None) -> _Stmt:
    if user_id is not None:
        stmt = stmt.where(ProviderCall.user_id == user_id)
    if since is not None:
        stmt = stmt.where(ProviderCall.day >= (since.isoformat() if isinstance(since, date) else since))
    return stmt
