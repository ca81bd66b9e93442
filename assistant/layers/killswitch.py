"""The kill switch: one flag that stops every remote model call, in every process, at once.

Why the database: an operator throws it once (``lastmile admin kill-switch on`` or
``Assistant.set_kill_switch(True)``) and every process sharing the database — UI
workers, job workers, a second server — sees it within ``LASTMILE_CONTROL_REFRESH_S``
(reads are cached that long, so a busy server does not query per call). Within the
process that threw it, it takes effect at once. ``LASTMILE_KILL_SWITCH=1`` forces it on
for a process whatever the database says (an incident runbook with no DB access).

``KillSwitchModel`` wraps each remote member of the chain, between its breaker and its
retry layer: when the switch is on it raises ``RemoteCallsDisabled`` before the provider
is even asked for a stream, so no byte leaves the machine, no retry happens, no ledger
row is written, and the breaker (which ignores that error) counts no failure. Fallback then
moves on (to ``local``), and ``SafeModeModel`` tells the user.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from assistant.errors import ConfigurationError, RemoteCallsDisabled
from assistant.layers.resilience import close_quietly
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest, ModelWrapper
from memory.db import reads
from memory.models import ControlFlag, utcnow

__all__ = ["KILL_SWITCH", "ControlFlags", "KillSwitchModel"]

log = logging.getLogger(__name__)
KILL_SWITCH = "kill_switch"
#: Bumped by every write in this process, so local readers skip their cached value.
_writes = itertools.count(1)
_generation = 0


class ControlFlags:
    """Reads (briefly cached) and writes operator flags in ``control_flags``."""

    def __init__(self, engine: Engine | None, *, forced_kill: bool = False, refresh_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.forced_kill, self.refresh_s, self._clock = engine, forced_kill, refresh_s, clock
        self._lock = threading.Lock()
        self._cached: dict[str, Any] | None = None
        self._read_at = float("-inf")
        self._read_generation = -1

    @classmethod
    def from_settings(cls, settings: Any, engine: Engine | None) -> ControlFlags:
        return cls(engine, forced_kill=settings.kill_switch, refresh_s=settings.control_refresh_s)

    def _row(self) -> dict[str, Any]:
        """The kill-switch row (cached for ``refresh_s``); the last known value if the
        database cannot be read, so a DB blip neither throws nor releases the switch."""
        with self._lock:
            fresh = (self._clock() - self._read_at < self.refresh_s
                     and self._read_generation == _generation)
            if self._cached is not None and fresh:
                return self._cached
            generation = _generation
        row: dict[str, Any] = {"value": "off", "updated_by": None, "updated_at": None}
        if self.engine is not None:
            try:
                with reads(self.engine).connect() as conn:
                    found = conn.execute(select(ControlFlag.value, ControlFlag.updated_by,
                                                ControlFlag.updated_at)
                                         .where(ControlFlag.name == KILL_SWITCH)).first()
                if found is not None:
                    row = dict(found._mapping)
            except SQLAlchemyError as exc:
                log.warning("cannot read the kill switch (%s); keeping the last known state", exc)
                with self._lock:
                    return self._cached or row
        with self._lock:
            self._cached, self._read_at, self._read_generation = row, self._clock(), generation
        return row

    def kill_switch(self) -> bool:
        """Is every remote model call to be refused right now?"""
        return self.forced_kill or self._row()["value"] == "on"

    def status(self) -> dict[str, Any]:
        """State and who set it, for ``lastmile admin kill-switch status`` and a dashboard."""
        row = self._row()
        source = "setting" if self.forced_kill else ("database" if row["updated_at"] else "default")
        return {"kill_switch": self.kill_switch(), "source": source,
                "updated_by": row["updated_by"], "updated_at": row["updated_at"]}

    def set_kill_switch(self, on: bool, *, by: str | None = None) -> None:
        """Throw (or release) the switch for every process on this database."""
        if self.engine is None:
            raise ConfigurationError("the kill switch needs a database to be shared through "
                                     "(this assistant's store has no SQL engine)")
        values = {"value": "on" if on else "off", "updated_by": by, "updated_at": utcnow()}
        for _ in range(2):  # update, else insert; a racing insert makes the retry an update
            try:
                with self.engine.begin() as conn:
                    done = conn.execute(update(ControlFlag).where(ControlFlag.name == KILL_SWITCH)
                                        .values(**values)).rowcount
                    if not done:
                        conn.execute(insert(ControlFlag).values(name=KILL_SWITCH, **values))
                break
            except IntegrityError:
                continue
        global _generation
        _generation = next(_writes)
        # "by user 'default'", never "(by default)": the single user's name is "default".
        log.warning("kill switch %s%s", "ON: remote model calls stop" if on else "off",
                    f", set by user {by!r}" if by else "")


class KillSwitchModel(ModelWrapper):
    """A remote member that refuses, before any I/O, while the kill switch is on."""

    def __init__(self, inner: ChatModel, flags: ControlFlags) -> None:
        super().__init__(inner)
        self.flags = flags

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        if self.flags.kill_switch():
            raise RemoteCallsDisabled(f"kill switch is on: {self.label} not called", provider=self.label)
        iterator = iter(self.inner.request(request))
        try:
            yield from iterator
        finally:
            close_quietly(iterator)
