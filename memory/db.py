"""Engine creation and migrations.

SQLite gets WAL and foreign keys so the UI and a background worker can share the file;
any other SQLAlchemy URL is used as given. The schema is always brought to Alembic's
head on open, so a fresh data dir and an old one end up identical.

Replicas start together (a deploy, ``make cluster``), so work that must happen once per
database — migrating, ingesting the sample corpus — runs under ``exclusive``: one
process at a time on that database (PostgreSQL advisory lock, a file lock for SQLite),
and the second finds the work done instead of racing it into a UniqueViolation.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, Engine, Result, create_engine, event, make_url, text
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError

from assistant.errors import DatabaseUnavailable

__all__ = ["IDLE_PING_S", "exclusive", "migrate", "open_engine", "reads", "rowcount", "safe_url"]

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCAL_LOCKS: dict[str, threading.Lock] = {}  # databases no other process can open
_LOCAL_GUARD = threading.Lock()


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Hold the database-wide lock ``name`` (blocking) for the ``with`` block.

    PostgreSQL: a session advisory lock keyed by ``name`` and the current schema, held on
    a connection of its own (a crashed holder's lock goes with its connection). SQLite
    file: ``flock`` on ``<database>.<name>.lock`` beside it. Anything else (an in-memory
    SQLite): a lock of this process.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            key = conn.scalar(text("SELECT hashtextextended(:name || '/' || current_schema(), 0)"),
                              {"name": name})
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()  # a session lock: no transaction left open while we wait or work
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and database != ":memory:" and not database.startswith("file:"):
        slug = "".join(c if c.isalnum() else "-" for c in name)
        with open(f"{database}.{slug}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with _LOCAL_GUARD:
        lock = _LOCAL_LOCKS.setdefault(f"{engine.url}/{name}", threading.Lock())
    with lock:
        yield


def reads(engine: Engine) -> Engine:
    """``engine`` in autocommit, on the same pool: for sessions that only read.

    Why: a read in a transaction costs three round trips (BEGIN, the query, ROLLBACK when
    the session closes), and a turn makes about a dozen such reads. Each statement of
    READ COMMITTED sees its own snapshot anyway, so an autocommit read sees what the
    transactional one did. Never write through it: nothing would roll back.
    """
    if engine.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return engine
    reader = engine.__dict__.get("_lastmile_reads")  # made once per engine (a cycle the GC frees)
    if reader is None:
        reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        engine.__dict__["_lastmile_reads"] = reader
    return reader


def safe_url(url: str) -> str:
    """The URL with any password hidden, fit for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is still worth echoing back
        return url


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE touched. ``Session.execute`` is typed as returning a
    ``Result``; for a DML statement it is a ``CursorResult``, which carries the count."""
    return cast("CursorResult[Any]", result).rowcount or 0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


#: A pooled connection idle longer than this is pinged before it is handed out again.
IDLE_PING_S = 30.0


def _ping_when_idle(engine: Engine) -> None:
    """Check only connections that sat idle, instead of ``pool_pre_ping`` on every checkout.

    Why: ``pool_pre_ping`` costs one round trip per checkout, and a turn checks out a
    connection a few dozen times; a connection returned milliseconds ago is as alive as
    anything a ping could tell. One that sat idle (a restarted server, a proxy's idle
    timeout) is pinged, and a dead one is replaced before anyone sees it; one that drops
    mid-use fails its statement, which the store retries once (``ConversationStore``).
    """
    def checkin(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:  # the dialect's own ping, as pool_pre_ping does it
            alive = engine.dialect.do_ping(dbapi)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection is gone")

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


def open_engine(url: str, *, run_migrations: bool = True) -> Engine:
    """Connect, check the server answers, and migrate to head.

    Raises ``DatabaseUnavailable`` with the (password-free) URL when the database cannot
    be reached, so the CLI can print one clear line instead of a traceback.
    """
    parsed = make_url(url)
    kwargs: dict = {}
    if parsed.get_backend_name() == "postgresql":
        # Few idle connections per process: every replica and worker now runs job threads
        # on its engine, and PostgreSQL's default 100 slots are shared by all of them;
        # bursts (concurrent turns) still open up to 10 more, returned when done.
        kwargs.update(pool_size=2, max_overflow=10)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise DatabaseUnavailable(f"cannot use database {safe_url(url)}: {exc}", url=safe_url(url)) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    _ping_when_idle(engine)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if run_migrations:
            migrate(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot reach database {safe_url(url)}: {reason}", url=safe_url(url)
        ) from exc
    return engine


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema with Alembic on this engine's connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with exclusive(engine, "lastmile-migrate"), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
