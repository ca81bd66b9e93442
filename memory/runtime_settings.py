"""Settings an admin changes while lastmile runs (the Settings tab, ``lastmile admin
settings``), for every process on the database at once.

The same mechanism as the budget caps (``memory.budget``): each override is one
``control_flags`` row, ``setting:<field>`` holding the value as JSON, and every process
re-reads the rows at most every ``LASTMILE_CONTROL_REFRESH_S`` (at once in the process
that wrote them). Removing the rows is "back to the environment's settings". Only the
fields in ``TUNABLE`` can be overridden: what a deployment is (database, sign-in, ports)
stays in its environment.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from assistant.providers import registry
from assistant.settings import Settings
from memory.db import reads
from memory.models import ControlFlag, utcnow

__all__ = ["PREFIX", "TUNABLE", "RuntimeSettings", "check_value"]

log = logging.getLogger(__name__)
PREFIX = "setting:"
#: The fields an admin may change at run time, in the order the Settings tab shows them.
TUNABLE = ("providers", "local_model_path", "system_prompt", "temperature", "citation_policy",
           "review_threshold")
MAX_PROMPT_CHARS = 8_000


def _adapter(name: str) -> TypeAdapter[Any]:
    info = Settings.model_fields[name]
    field_type: Any = Annotated[info.annotation, info]  # the field's own type and bounds
    return TypeAdapter(field_type)


def check_value(name: str, value: Any) -> Any:
    """``value`` as the setting ``name`` takes it, or ``ValueError`` with a sentence an
    admin can act on (the same bounds as the environment variable)."""
    if name not in TUNABLE:
        raise ValueError(f"{name} cannot be changed at run time (only {', '.join(TUNABLE)})")
    if isinstance(value, str):
        value = value.strip()
    if name == "local_model_path" and value == "":
        value = None  # the embedded default
    try:
        clean = _adapter(name).validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"{name}: {exc.errors()[0]['msg']}") from None
    if name == "providers":
        specs = [s.strip() for s in str(clean).split(",") if s.strip()]
        unknown = [s for s in specs if registry.entry(s) is None]
        if not specs or unknown:
            raise ValueError(f"providers: unknown provider(s) {unknown or ['(none)']}; "
                             f"known: {', '.join(sorted(registry.names()))}")
        clean = ",".join(specs)
    if name == "local_model_path" and clean is not None:
        path = Path(clean).expanduser()
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise ValueError(f"local_model_path: no GGUF file at {path} on this server")
        clean = str(path)
    if name == "system_prompt" and not (0 < len(clean) <= MAX_PROMPT_CHARS):
        raise ValueError(f"system_prompt: give 1 to {MAX_PROMPT_CHARS:,} characters")
    return clean


class RuntimeSettings:
    """The overrides in force over one database, and ``apply`` to lay them over settings."""

    def __init__(self, engine: Engine | None, *, refresh_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.refresh_s, self._clock = engine, refresh_s, clock
        self._lock = threading.Lock()
        self._read: tuple[float, dict[str, Any]] = (float("-inf"), {})
        self._applied: tuple[Any, Settings] | None = None

    def overrides(self) -> dict[str, Any]:
        """``field → value`` set by an admin (cached ``refresh_s``). A database that
        cannot be read keeps the last known overrides; a row no longer valid is ignored."""
        with self._lock:
            read_at, known = self._read
            if self.engine is None or self._clock() - read_at < self.refresh_s:
                return dict(known)
        try:
            with reads(self.engine).connect() as conn:
                rows = conn.execute(select(ControlFlag.name, ControlFlag.value)
                                    .where(ControlFlag.name.startswith(PREFIX))).all()
        except SQLAlchemyError as exc:
            log.warning("cannot read the runtime settings (%s); keeping the last known", exc)
            with self._lock:  # and not asking again on every call while it is down
                self._read = (self._clock(), known)
            return dict(known)
        found = {}
        for name, raw in rows:
            field = name[len(PREFIX):]
            try:
                found[field] = check_value(field, json.loads(raw))
            except (ValueError, TypeError) as exc:
                log.warning("ignoring the runtime setting %s: %s", field, exc)
        with self._lock:
            self._read = (self._clock(), found)
        return dict(found)

    def apply(self, base: Settings) -> Settings:
        """``base`` with the overrides laid over it (the same object while nothing changed)."""
        values = self.overrides()
        if not values:
            return base
        key = (id(base), json.dumps(values, sort_keys=True, default=str))
        applied = self._applied
        if applied is not None and applied[0] == key:
            return applied[1]
        typed = {k: Path(v) if k == "local_model_path" and v is not None else v
                 for k, v in values.items()}
        merged = base.model_copy(update=typed)
        self._applied = (key, merged)
        return merged

    def set(self, values: Mapping[str, Any], *, by: str | None = None) -> dict[str, Any]:
        """Override these fields for every process now (all checked before any is
        written; ``ValueError`` names the first bad one). Returns what was stored."""
        clean = {name: check_value(name, value) for name, value in values.items()}
        if self.engine is None:
            raise ValueError("runtime settings need the SQL store (they are shared through it)")
        with self.engine.begin() as conn:
            for name, value in clean.items():
                conn.execute(delete(ControlFlag).where(ControlFlag.name == PREFIX + name))
                conn.execute(insert(ControlFlag).values(
                    name=PREFIX + name, value=json.dumps(value), updated_by=by, updated_at=utcnow()))
        self._forget()
        log.warning("runtime settings %s changed%s", ", ".join(sorted(clean)) or "(none)",
                    f" by user {by!r}" if by else "")
        return clean

    def reset(self, names: list[str] | None = None, *, by: str | None = None) -> None:
        """Back to the environment's settings: every override, or just ``names``."""
        if self.engine is None:
            return
        where = (ControlFlag.name.startswith(PREFIX) if names is None
                 else ControlFlag.name.in_([PREFIX + n for n in names]))
        with self.engine.begin() as conn:
            conn.execute(delete(ControlFlag).where(where))
        self._forget()
        log.warning("runtime settings back to the environment's%s", f" by user {by!r}" if by else "")

    def _forget(self) -> None:
        with self._lock:
            self._read = (float("-inf"), {})
