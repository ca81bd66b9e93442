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
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from assistant.errors import BudgetExceeded
from memory.db import reads
from memory.ledger import nusd_to_usd, today
from memory.models import BudgetAlert, BudgetCounter, ControlFlag, utcnow

__all__ = ["Budget", "Hold"]

log = logging.getLogger(__name__)
C = BudgetCounter
#: control_flags rows an admin writes to change a cap at run time (value: USD or "off").
CAP_FLAGS = {"user": "budget_user_daily_usd", "global": "budget_global_daily_usd"}
CAPS_REFRESH_S = 1.0


def _nusd(usd: float | None) -> int | None:
    return None if usd is None else round(usd * 1e9)


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
        self._configured = {"user": _nusd(user_daily_usd), "global": _nusd(global_daily_usd)}
        self._overrides: tuple[float, dict[str, int | None]] = (float("-inf"), {})
        self.webhook, self.webhook_timeout_s = webhook, webhook_timeout_s
        self._posts: list[threading.Thread] = []
        self._posts_lock = threading.Lock()
        self._webhook_failing = False

    @classmethod
    def from_settings(cls, engine: Engine, settings: Any) -> Budget:
        return cls(engine, user_daily_usd=settings.budget_user_daily_usd,
                   global_daily_usd=settings.budget_global_daily_usd,
                   soft_fraction=settings.budget_soft_fraction, webhook=settings.budget_alert_webhook)

    # caps: from settings, unless an admin set one at run time (control_flags rows) ------
    def _caps(self) -> dict[str, int | None]:
        """The caps in force, re-read from the database at most every ``CAPS_REFRESH_S``."""
        read_at, overrides = self._overrides
        if time.monotonic() - read_at >= CAPS_REFRESH_S:
            with reads(self.engine).connect() as conn:
                rows = dict(conn.execute(select(ControlFlag.name, ControlFlag.value).where(
                    ControlFlag.name.in_(CAP_FLAGS.values()))).all())
            overrides = {scope: _nusd(None if rows[flag] == "off" else float(rows[flag]))
                         for scope, flag in CAP_FLAGS.items() if flag in rows}
            self._overrides = (time.monotonic(), overrides)
        return {**self._configured, **overrides}

    @property
    def user_cap(self) -> int | None:
        return self._caps()["user"]

    @property
    def global_cap(self) -> int | None:
        return self._caps()["global"]

    def set_cap(self, scope: str, usd: float | None, *, by: str | None = None) -> None:
        """Change the ``user`` (each user's) or ``global`` daily cap for every process on
        this database, now: ``None`` removes the cap. ``reset_cap`` returns to settings."""
        if scope not in CAP_FLAGS:
            raise ValueError(f"scope must be one of {sorted(CAP_FLAGS)}, got {scope!r}")
        if (usd is not None and not (0 <= usd <= 10_000_000)) or usd != usd:  # nan too
            raise ValueError(f"a daily cap must be between 0 and 10,000,000 USD, got {usd!r}")
        self._write(CAP_FLAGS[scope], "off" if usd is None else repr(float(usd)), by)

    def reset_cap(self, scope: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(ControlFlag).where(ControlFlag.name == CAP_FLAGS[scope]))
        self._overrides = (float("-inf"), {})

    def _write(self, name: str, value: str, by: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(ControlFlag).where(ControlFlag.name == name))
            conn.execute(insert(ControlFlag).values(name=name, value=value, updated_by=by,
                                                    updated_at=utcnow()))
        self._overrides = (float("-inf"), {})
        log.warning("budget %s set to %s%s", name, value, f" by user {by!r}" if by else "")

    def caps_usd(self) -> dict[str, float | None]:
        """The caps in force, in USD, for a dashboard."""
        return {scope: None if cap is None else nusd_to_usd(cap) for scope, cap in self._caps().items()}

    @property
    def enabled(self) -> bool:
        return any(cap is not None for cap in self._caps().values())

    def _scopes(self, user_id: str | None) -> tuple[tuple[str, int], ...]:
        # Always user before global: one lock order, so concurrent turns cannot deadlock.
        caps = self._caps()
        scopes = []
        if caps["user"] is not None and user_id:
            scopes.append((f"user:{user_id}", caps["user"]))
        if caps["global"] is not None:
            scopes.append(("global", caps["global"]))
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
            with self._posts_lock:  # a dead receiver is said once, not once per alert
                first, self._webhook_failing = not self._webhook_failing, True
            (log.warning if first else log.debug)(
                "alert webhook %s failed: %s (alerts are still stored; said once until it answers)",
                self.webhook, exc)
            return
        with self._posts_lock:
            recovered, self._webhook_failing = self._webhook_failing, False
        if recovered:
            log.info("alert webhook %s answers again", self.webhook)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait for webhook posts in flight (tests, shutdown)."""
        with self._posts_lock:
            posts = list(self._posts)
        for thread in posts:
            thread.join(timeout_s)
