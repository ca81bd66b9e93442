"""Issue 14 (a fast turn): the hot-path changes keep their promises.

* No ``pool_pre_ping``: a connection killed under the pool (``pg_terminate_backend``) is
  replaced — pinged when it sat idle, or the store's write retried once when it dropped
  while in use; the message is stored once either way.
* One query embedding per turn: the corpus search reads the shared query cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

import memory.db as db
from memory.store import ConversationStore


def _kill_pooled(engine) -> set[int]:  # type: ignore[no-untyped-def]
    """Terminate every backend of the engine's database but the killer's own (the pool's
    idle connections); returns their pids."""
    _backend_pid(engine)  # at least one pooled connection
    admin = db.create_engine(engine.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        rows = conn.execute(text(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid()")).all()
    admin.dispose()
    assert rows and all(ok for _pid, ok in rows)
    return {int(pid) for pid, _ok in rows}


def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT pg_backend_pid()")))


@pytest.mark.postgres
def test_engine_has_no_pre_ping(postgres_url: str) -> None:
    engine = db.open_engine(postgres_url)
    try:
        assert engine.pool._pre_ping is False  # the setting under test
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_idle_connection_killed_is_replaced_before_use(postgres_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.open_engine(postgres_url)
    try:
        store = ConversationStore(engine)
        store.add_message("u1", "s1", "user", "before the kill")
        killed = _kill_pooled(engine)
        monkeypatch.setattr(db, "IDLE_PING_S", 0.0)  # every pooled connection counts as idle
        # A read (never retried) gets a live connection: the dead one was pinged first.
        assert [m.content for m in store.history("u1", "s1")] == ["before the kill"]
        assert _backend_pid(engine) not in killed
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_connection_dropped_in_use_is_retried_once(postgres_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.open_engine(postgres_url)
    try:
        store = ConversationStore(engine)
        store.add_message("u2", "s1", "user", "first")
        monkeypatch.setattr(db, "IDLE_PING_S", 3600.0)  # no ping: the write meets the dead socket
        killed = _kill_pooled(engine)
        store.add_message("u2", "s1", "user", "second")
        assert _backend_pid(engine) not in killed
        assert [m.content for m in store.history("u2", "s1")] == ["first", "second"]
    finally:
        engine.dispose()


def test_corpus_search_uses_the_shared_query_embedding(tmp_path: Path) -> None:
    """The corpus used to embed the query a second time, beside the memory's cached one."""
    from memory.corpus import Corpus
    from memory.dense import QUERY_CACHE
    from memory.vectors import open_chroma

    engine = db.open_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        corpus = Corpus(engine, open_chroma(tmp_path / "chroma", None), scanner=None)
        doc = tmp_path / "ferry.txt"
        doc.write_text("The ferry to the island leaves at 9:30 and costs 14 euros.\n")
        corpus.ingest([doc], collection="notes", user_id="u")
        query = "when does the island ferry leave? (query-cache probe)"
        before = QUERY_CACHE.misses
        assert corpus.search("u", query)
        assert QUERY_CACHE.misses == before + 1
        hits = QUERY_CACHE.hits
        assert corpus.search("u", query)  # the same turn's other consumers: a cache hit
        assert QUERY_CACHE.hits == hits + 1 and QUERY_CACHE.misses == before + 1
    finally:
        engine.dispose()


def _wait_rebuilt(index, user: str) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + 30
    while index._rebuilding and time.monotonic() < deadline:  # the background build
        time.sleep(0.01)
    assert not index._rebuilding


def test_big_lexical_index_answers_from_its_previous_build_while_rebuilding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import memory.lexical as lexical

    monkeypatch.setattr(lexical, "BACKGROUND_MIN", 50)
    index = lexical.LexicalIndex()
    index.add("u", [(f"m{i}", f"note {i} about the garden shed") for i in range(60)])
    assert index.search("u", "garden", 3)  # the first build is in the foreground
    index.add("u", [("new", "the heron waded in the pond")])
    assert index.search("u", "heron", 3) == []  # the previous build answers meanwhile
    _wait_rebuilt(index, "u")
    assert [i for i, _ in index.search("u", "heron", 3)] == ["new"]


def test_lexical_removal_and_small_indexes_are_never_answered_stale(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import memory.lexical as lexical

    monkeypatch.setattr(lexical, "BACKGROUND_MIN", 50)
    index = lexical.LexicalIndex()
    index.add("u", [(f"m{i}", f"note {i} about the garden shed") for i in range(60)])
    index.add("u", [("heron", "the heron waded in the pond")])
    assert [i for i, _ in index.search("u", "heron", 3)] == ["heron"]  # no previous build yet
    index.remove("u", ["heron"])
    assert index.search("u", "heron", 3) == []  # gone at once, whatever is being rebuilt
    small = lexical.LexicalIndex()
    small.add("s", [("a", "the kettle boiled")])
    assert small.search("s", "kettle", 1)
    small.add("s", [("b", "the heron waded")])
    assert [i for i, _ in small.search("s", "heron", 1)] == ["b"]  # below BACKGROUND_MIN


@pytest.mark.slow
@pytest.mark.postgres
def test_bench_overhead_smoke(postgres_url: str, tmp_path: Path) -> None:
    """The benchmark command end to end, CI-sized: real echo backend, real `lastmile serve`
    on a scratch PostgreSQL database, both scenarios; it prints the table, 0 errors."""
    import os
    import subprocess
    import sys

    # tests/conftest.py's admin URL (importing 'conftest' can find tests/security's under xdist)
    PG_ADMIN_URL = os.environ.get("LASTMILE_TEST_POSTGRES_URL",
                                  "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update({"OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    lastmile = str(Path(sys.executable).parent / "lastmile")
    done = subprocess.run(
        [lastmile, "bench", "overhead", "--concurrency", "1,4", "--requests", "6",
         "--burst-requests", "8", "--warmup", "2", "--big-turns", "120", "--documents", "3",
         "--stream", "--postgres-url", PG_ADMIN_URL, "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=1500, env=env, cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 0, (out[-3000:], done.stderr[-3000:])
    assert "Turn overhead vs LiteLLM" in out
    rows = [line for line in out.splitlines() if "lastmile /v1" in line]
    assert len(rows) == 4, out  # fresh and big, at c=1 and c=4
    for line in rows:
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        assert cells[4] == "0", line  # the errors column
        assert float(cells[5]) > 0  # a measured p50
    assert "first turn of the big user on a fresh process" in out
    assert "target c=4 >= 50 turns/s" in out  # the bars are checked and printed
