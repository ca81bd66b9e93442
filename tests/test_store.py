"""The SQL store on SQLite and PostgreSQL: migrations, sessions, isolation, failures."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from assistant.errors import DatabaseUnavailable, SessionNotFound
from memory.db import open_engine, safe_url
from memory.store import ConversationStore


@pytest.fixture
def store(database_url: str) -> ConversationStore:
    return ConversationStore(open_engine(database_url))


def test_migrations_create_every_table_at_head(database_url: str) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from memory.db import MIGRATIONS
    from memory.models import Base

    engine = open_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    # The migrations and the ORM models describe the same schema, table for table.
    assert tables - {"alembic_version"} == set(Base.metadata.tables)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    open_engine(database_url)  # migrating again is a no-op, not an error


def test_sqlite_uses_wal(tmp_path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_messages_round_trip_in_order_with_metadata(store: ConversationStore) -> None:
    first = store.add_message("alice", "s1", "user", "hello there", token_count=3)
    store.add_message("alice", "s1", "assistant", "hi!", provider="local:x", latency_ms=12.5,
                      prompt_tokens=10, completion_tokens=2)
    history = store.history("alice", "s1")
    assert [(m.role, m.content) for m in history] == [("user", "hello there"), ("assistant", "hi!")]
    assert history[0].id == first.id and history[0].token_count == 3
    assert history[1].provider == "local:x" and history[1].latency_ms == 12.5
    assert history[1].created_at.tzinfo is not None
    assert store.list_sessions("alice")[0].title == "hello there"


def test_sessions_are_namespaced_per_user(store: ConversationStore) -> None:
    store.add_message("alice", "work", "user", "alice's secret plan")
    store.add_message("bob", "work", "user", "bob's note")
    assert [m.content for m in store.history("alice", "work")] == ["alice's secret plan"]
    assert [m.content for m in store.history("bob", "work")] == ["bob's note"]
    assert [s.session_id for s in store.list_sessions("carol")] == []
    with pytest.raises(SessionNotFound):
        store.history("carol", "work")


def test_create_list_rename_sessions(store: ConversationStore) -> None:
    a = store.create_session("alice", "Trip planning")
    b = store.create_session("alice")
    store.add_message("alice", b.session_id, "user", "newest activity")
    listed = store.list_sessions("alice")
    assert [s.session_id for s in listed] == [b.session_id, a.session_id]
    assert listed[0].message_count == 1 and listed[1].message_count == 0
    renamed = store.rename_session("alice", a.session_id, "  Japan 2027 ")
    assert renamed.title == "Japan 2027"
    with pytest.raises(ValueError):
        store.rename_session("alice", a.session_id, "   ")
    with pytest.raises(SessionNotFound):
        store.rename_session("bob", a.session_id, "hijack")


def test_recent_returns_newest_window_oldest_first(store: ConversationStore) -> None:
    for i in range(10):
        store.add_message("u", "s", "user", f"m{i}")
    assert [m.content for m in store.recent("u", "s", 3)] == ["m7", "m8", "m9"]
    assert store.recent("u", "missing", 3) == []


def test_unindexed_bookkeeping(store: ConversationStore) -> None:
    m1 = store.add_message("u", "s", "user", "one")
    m2 = store.add_message("u", "s", "assistant", "two")
    store.add_message("u", "s", "assistant", "broken", status="error")
    assert [m.id for m in store.unindexed()] == [m1.id, m2.id]
    store.mark_indexed([m1.id])
    assert [m.id for m in store.unindexed()] == [m2.id]


def test_unreachable_database_names_the_url_without_password() -> None:
    url = "postgresql+psycopg://me:hunter2@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseUnavailable) as info:
        open_engine(url)
    assert "127.0.0.1:1/nowhere" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in safe_url(url)


@pytest.mark.parametrize("user,key", [("", "s"), ("u", ""), ("u", "x" * 129), ("u", "  ")])
def test_bad_ids_are_a_clear_error_on_every_backend(store: ConversationStore, user: str, key: str) -> None:
    with pytest.raises(ValueError, match="must be a non-empty string"):
        store.add_message(user, key, "user", "hi")


def test_upgrade_from_first_revision_keeps_rows(database_url: str) -> None:
    from memory.db import migrate

    engine = open_engine(database_url, run_migrations=False)
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, created_at) VALUES ('u', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO conversations (user_id, key, title, created_at, updated_at) "
                          "VALUES ('u', 's', 't', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO messages (conversation_id, user_id, role, content, status, "
                          "created_at) SELECT id, 'u', 'user', 'old row', 'ok', CURRENT_TIMESTAMP "
                          "FROM conversations"))
    store = ConversationStore(open_engine(database_url))  # upgrades to head
    old = store.history("u", "s")[0]
    assert old.content == "old row" and old.finish_reason is None
    store.add_message("u", "s", "assistant", "cut", finish_reason="length")
    assert store.history("u", "s")[1].finish_reason == "length"
