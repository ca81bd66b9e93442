"""Daily spend caps that hold under concurrency: reserve before a paid call, settle after.

A call's worst-case cost (estimated prompt × input price + ``max_tokens`` × output price)
is reserved on a per-(scope, UTC day) counter row by one conditional UPDATE::

    UPDATE budget_counters SET reserved = reserved + :x
    WHERE scope = :s AND day = :d AND reserved + spent + :x <= :cap

PostgreSQL re-checks the WHERE against the latest row version after waiting for the row
lock, and SQLite serialises writers, so on both a reservation either fits or matches no
row: N concurrent turns can never over-admit. After the call the reservation is swapped
for the reported cost (or released on failure). Crossing ``soft_fraction`` of a cap logs,
stores a ``budget_alerts`` row and POSTs the optional webhook, once per scope and day.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from assistant.errors import BudgetExceeded
from memory.ledger import nusd_to_usd, today
from memory.models import BudgetAlert, BudgetCounter, utcnow

__all__ = ["Budget", "Hold"]

log = logging.getLogger(__name__)
C = BudgetCounter


@dataclass(frozen=True)
class Hold:
    """A reservation: ``nusd`` nano-USD held on each ``(scope, cap_nusd)`` for ``day``."""

    day: str
    scopes: tuple[tuple[str, int], ...]
    nusd: int


class _Refused(Exception):
    def __init__(self, scope: str, cap: int) -> None:
        self.scope, self.cap = scope, cap


def _insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
    """INSERT unless the key exists; True if a row was inserted. Race-safe."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(conn.dialect.name)
    if dialect is not None:
        # RETURNING, not rowcount: with an implicit RETURNING, psycopg reports rowcount -1.
        stmt = dialect.insert(table).values(**values).on_conflict_do_nothing()
        return conn.execute(stmt.returning(literal_column("1"))).first() is not None
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(**values))
        return True
    except IntegrityError:
        return False


class Budget:
    """Per-user and global daily caps in USD (``None``: no cap) over one database."""

    def __init__(self, engine: Engine, *, user_daily_usd: float | None = None,
                 global_daily_usd: float | None = None, soft_fraction: float = 0.8,
                 webhook: str | None = None, webhook_timeout_s: float = 5.0) -> None:
        if not 0 < soft_fraction <= 1:
            raise ValueError("soft_fraction must be in (0, 1]")
        self.engine, self.soft_fraction = engine, soft_fraction
        self.user_cap = None if user_daily_usd is None else round(user_daily_usd * 1e9)
        self.global_cap = None if global_daily_usd is None else round(global_daily_usd * 1e9)
        self.webhook, self.webhook_timeout_s = webhook, webhook_timeout_s
        self._posts: list[threading.Thread] = []
        self._posts_lock = threading.Lock()

    @classmethod
    def from_settings(cls, engine: Engine, settings: Any) -> Budget:
        return cls(engine, user_daily_usd=settings.budget_user_daily_usd,
                   global_daily_usd=settings.budget_global_daily_usd,
                   soft_fraction=settings.budget_soft_fraction, webhook=settings.budget_alert_webhook)

    @property
    def enabled(self) -> bool:
        return self.user_cap is not None or self.global_cap is not None

    def _scopes(self, user_id: str | None) -> tuple[tuple[str, int], ...]:
        # Always user before global: one lock order, so concurrent turns cannot deadlock.
        scopes = []
        if self.user_cap is not None and user_id:
            scopes.append((f"user:{user_id}", self.user_cap))
        if self.global_cap is not None:
            scopes.append(("global", self.global_cap))
        return tuple(scopes)

    def reserve(self, user_id: str | None, nusd: int, *, label: str = "") -> Hold | None:
        """Hold ``nusd`` on every applicable cap, or raise ``BudgetExceeded`` holding nothing."""
        scopes = self._scopes(user_id)
        if not scopes:
            return None
        day = today()
        try:
            with self.engine.begin() as conn:
                for scope, cap in scopes:
                    _insert_ignore(conn, C.__table__, {"scope": scope, "day": day,
                                                       "reserved_nusd": 0, "spent_nusd": 0})
                    admitted = conn.execute(
                        update(C).where(C.scope == scope, C.day == day,
                                        C.reserved_nusd + C.spent_nusd + nusd <= cap)
                        .values(reserved_nusd=C.reserved_nusd + nusd)).rowcount
                    if admitted != 1:
                        raise _Refused(scope, cap)  # rolls back holds taken on earlier scopes
        except _Refused as refused:
            log.warning("budget %s for %s is spent (cap $%.6f): refused a call to %s",
                        refused.scope, day, nusd_to_usd(refused.cap), label or "?")
            with self.engine.begin() as conn:
                alert = self._alert(conn, refused.scope, day, "hard", refused.cap)
            self.notify([alert] if alert else [])
            raise BudgetExceeded(f"daily budget {refused.scope} (${nusd_to_usd(refused.cap):.6f}) "
                                 f"would be exceeded by a call to {label or '?'}",
                                 provider=label, scope=refused.scope) from None
        return Hold(day, scopes, nusd)

    def settle(self, hold: Hold, actual_nusd: int, conn: Connection) -> list[dict[str, Any]]:
        """Swap the reservation for the actual cost in ``conn``'s transaction; returns new
        alerts (post them with ``notify`` after the commit)."""
        alerts = []
        for scope, cap in hold.scopes:
            where = (C.scope == scope, C.day == hold.day)
            conn.execute(update(C).where(*where).values(
                reserved_nusd=C.reserved_nusd - hold.nusd, spent_nusd=C.spent_nusd + actual_nusd))
            spent = conn.scalar(select(C.spent_nusd).where(*where)) or 0
            soft = cap * self.soft_fraction
            if actual_nusd > 0 and spent - actual_nusd < soft <= spent:
                log.warning("budget %s for %s passed %.0f%% of its cap ($%.6f of $%.6f)", scope,
                            hold.day, self.soft_fraction * 100, nusd_to_usd(spent), nusd_to_usd(cap))
                if alert := self._alert(conn, scope, hold.day, "soft", cap, spent):
                    alerts.append(alert)
        return alerts

    def release(self, hold: Hold) -> None:
        """Give back a reservation whose call cost nothing (it failed before usage)."""
        with self.engine.begin() as conn:
            self.settle(hold, 0, conn)

    def counters(self, day: str | None = None) -> dict[str, tuple[int, int]]:
        """``scope → (reserved_nusd, spent_nusd)`` for a day (default today)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(C.scope, C.reserved_nusd, C.spent_nusd)
                                .where(C.day == (day or today())))
            return {scope: (int(r), int(s)) for scope, r, s in rows}

    def _alert(self, conn: Connection, scope: str, day: str, level: str, cap: int,
               spent: int | None = None) -> dict[str, Any] | None:
        if spent is None:
            spent = conn.scalar(select(C.spent_nusd).where(C.scope == scope, C.day == day)) or 0
        alert = {"scope": scope, "day": day, "level": level, "spent_usd": nusd_to_usd(spent),
                 "cap_usd": nusd_to_usd(cap)}
        if not _insert_ignore(conn, BudgetAlert.__table__, {**alert, "created_at": utcnow()}):
            return None  # already alerted today
        return {"event": f"budget.{level}_limit", **alert, "soft_fraction": self.soft_fraction}

    def notify(self, alerts: list[dict[str, Any]]) -> None:
        """POST each alert to the webhook in the background: a slow or broken receiver
        must never delay or break a turn."""
        if not self.webhook:
            return
        for alert in alerts:
            thread = threading.Thread(target=self._post, args=(alert,), daemon=True,
                                      name="budget-webhook")
            thread.start()
            with self._posts_lock:
                self._posts = [t for t in self._posts if t.is_alive()] + [thread]

    def _post(self, alert: dict[str, Any]) -> None:
        request = urllib.request.Request(self.webhook or "", data=json.dumps(alert).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.webhook_timeout_s) as response:
                response.read()
        except Exception as exc:  # noqa: BLE001 - an alert must never take a turn down
            log.warning("budget alert webhook %s failed: %s", self.webhook, exc)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait for webhook posts in flight (tests, shutdown)."""
        with self._posts_lock:
            posts = list(self._posts)
        for thread in posts:
            thread.join(timeout_s)
