"""Finding 10 (fact and export half): a forgotten fact kept its text in the database,
and every Memory-tab view left the user's fact history in a temp JSON file that was
never deleted. Replayed on the real server: facts told over ``/v1``, forgotten and
exported through the Memory tab's own events, then the database, Chroma and the temp
folder are read directly."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sec_gradio import call, event_index
from sqlalchemy import text

TOWN, NEW_TOWN = "Zyxburgh", "Qorvathon"  # words no other row, file or model would hold


@pytest.fixture
def rig(make_rig: Callable[..., Any]) -> Any:
    """Rule-based fact extraction (the fake provider's echo is no extraction model)."""
    return make_rig(facts_model="rules")


def tell(rig: Any, user: str, *lines: str, session: str = "facts") -> None:
    """Chat ``lines`` over ``/v1`` and wait for the background fact jobs."""
    api = rig.api(user)
    for line in lines:
        api.chat.completions.create(model="lastmile", messages=[{"role": "user", "content": line}],
                                    extra_body={"metadata": {"session_id": session}})
    rig.bot.flush()


def facts_rows(rig: Any) -> list[str]:
    """Every row of the facts table, every column as text (what a raw SELECT shows)."""
    with rig.bot.store.engine.connect() as conn:
        return [" | ".join(str(v) for v in row) for row in conn.execute(text("SELECT * FROM facts"))]


def chroma_text(rig: Any) -> str:
    """Everything Chroma holds for the facts collection: its documents and metadata and,
    for an embedded Chroma, that collection's rows in every table of its SQLite file
    (embeddings, metadata, full-text index, write-ahead queue). Other collections (the
    conversation's own turns) are not facts."""
    collection = rig.bot.facts_memory.collection
    got = collection.get(include=["documents", "metadatas"])
    found = [json.dumps(got["documents"]), json.dumps(got["metadatas"])]
    database = Path(rig.settings.chroma_path) / "chroma.sqlite3"
    if database.exists():
        cid = str(collection.id)
        queries = [
            ("SELECT e.* FROM embeddings e JOIN segments s ON s.id = e.segment_id WHERE s.collection = ?"),
            ("SELECT m.* FROM embedding_metadata m JOIN embeddings e ON e.id = m.id "
             "JOIN segments s ON s.id = e.segment_id WHERE s.collection = ?"),
            ("SELECT f.* FROM embedding_fulltext_search f JOIN embeddings e ON e.id = f.rowid "
             "JOIN segments s ON s.id = e.segment_id WHERE s.collection = ?"),
            "SELECT * FROM embeddings_queue WHERE topic LIKE '%' || ? || '%'",
        ]
        with sqlite3.connect(database) as conn:
            for query in queries:
                for row in conn.execute(query, (cid,)):
                    found += [v if isinstance(v, str) else v.decode("utf-8", "replace")
                              for v in row if isinstance(v, (str, bytes))]
    return "\n".join(found)


def indexed(rig: Any) -> list[str]:
    return list(rig.bot.facts_memory.collection.get(include=[])["ids"])


def memory_event(client: Any, elem_id: str, trigger: str, data: list[Any] | None = None) -> dict[str, Any]:
    done = call(client, event_index(client, elem_id, trigger), data)
    assert done["success"], done
    return done


def test_forgetting_erases_the_text_everywhere_but_keeps_the_row(rig: Any) -> None:
    tell(rig, "alice", f"I live in {TOWN}.", f"I moved from {TOWN} to {NEW_TOWN}.", "I like chess.")
    history = rig.bot.facts("alice", include_history=True)
    current = next(f for f in rig.bot.facts("alice") if f.key == "home")
    assert NEW_TOWN in current.text and any(TOWN in f.text for f in history if f.status == "superseded")
    assert any(NEW_TOWN in r for r in facts_rows(rig))  # the control: the text was there
    assert f"fact-{current.id}" in indexed(rig) and NEW_TOWN not in chroma_text(rig)  # vector only
    before = {f.id: f for f in history}

    client = rig.sign_in("alice")
    memory_event(client, "lm-fact-forget", "click", [current.id, True, None])

    rows = facts_rows(rig)
    for word in (TOWN, NEW_TOWN):
        assert not [r for r in rows if word.lower() in r.lower()], rows
        assert word.lower() not in chroma_text(rig).lower()
    assert f"fact-{current.id}" not in indexed(rig)
    after = {f.id: f for f in rig.bot.facts("alice", include_history=True)}
    assert set(after) == set(before)  # no row deleted
    for fact_id in (current.id, current.supersedes):
        old, new = before[fact_id], after[fact_id]
        assert (new.key, new.valid_from, new.source_ids) == (old.key, old.valid_from, old.source_ids)
        assert (new.text, new.value) == ("", "")
        assert new.text_sha256 == hashlib.sha256(old.text.encode()).hexdigest()
    assert after[current.id].status == "forgotten" and after[current.supersedes].status == "superseded"
    if rig.bot.store.engine.dialect.name == "sqlite":  # not even in the file's free bytes
        database = Path(rig.bot.store.engine.url.database)
        raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert f"user lives in {NEW_TOWN}".encode() not in raw
    assert [f.value for f in rig.bot.facts("alice")] == ["chess"]  # the rest stays
    rig.provider.requests.clear()
    tell(rig, "alice", "Where do I live?", session="later")  # a new chat: only memory recalls
    assert TOWN not in rig.provider_bodies() and NEW_TOWN not in rig.provider_bodies()


def test_forgetting_by_description_keeps_no_words_of_it(rig: Any) -> None:
    """The reason stored with the erased row must not quote "forget that I like ...""."""
    tell(rig, "bob", f"I like {TOWN} pastries.")
    assert rig.bot.forget("bob", f"that I like {TOWN} pastries").forgotten
    assert not [r for r in facts_rows(rig) if TOWN.lower() in r.lower()]


def test_forgetting_drops_the_users_cached_replies(make_rig: Callable[..., Any]) -> None:
    """A cached reply quoting the fact ("echo: I live in ...") is a copy of it too."""
    rig = make_rig(facts_model="rules", cache_mode="exact")
    tell(rig, "alice", f"I live in {TOWN}.")
    tell(rig, "bob", f"I live in {NEW_TOWN}.")

    def cached(user: str) -> list[str]:
        with rig.bot.store.engine.connect() as conn:
            return [" | ".join(map(str, r)) for r in conn.execute(
                text("SELECT * FROM cache_entries WHERE user_id = :u"), {"u": user})]

    assert any(TOWN in r for r in cached("alice"))  # the control: the copy was there
    [home] = rig.bot.facts("alice")
    assert rig.bot.forget("alice", home.id).forgotten
    assert not [r for r in cached("alice") if TOWN in r]
    assert any(NEW_TOWN in r for r in cached("bob"))  # another user's cache is theirs


def _temp_files(since: float, besides: Path) -> list[Path]:
    """Files under the temp folder (Gradio's cache included) written since ``since``,
    except under ``besides`` (the test's own folder: the deployment's database is there)
    and this run's other test folders (tests running beside it on other xdist workers keep
    their deployments' databases there)."""
    runs = [p for p in besides.parents if p.name.startswith("pytest-") and
            p.parent.name.startswith("pytest-of-")]
    found = []
    for root, _dirs, files in os.walk(tempfile.gettempdir()):
        if Path(root).is_relative_to(besides) or any(Path(root).is_relative_to(r) for r in runs):
            continue
        for name in files:
            path = Path(root) / name
            try:
                if path.stat().st_mtime >= since and path.stat().st_size < 5_000_000:
                    found.append(path)
            except OSError:
                continue
    return found


def test_memory_views_and_exports_leave_nothing_in_the_temp_folder(rig: Any) -> None:
    tell(rig, "alice", f"I live in {TOWN}.")
    started = time.time() - 1
    client = rig.sign_in("alice")
    for with_history in (False, True):  # the tab's views (the history box's changes)
        memory_event(client, "lm-facts-history", "change", [with_history, None])
    memory_event(client, "lm-tab-memory", "select", [False, None])
    exported = memory_event(client, "lm-facts-export", "click", [])["output"]["data"][0]
    facts = json.loads(exported)
    assert facts["user_id"] == "alice" and any(TOWN in f["text"] for f in facts["facts"])

    written = _temp_files(started, besides=Path(rig.settings.data_dir).parent)
    assert [p for p in written if p.name.startswith("lastmile-facts")] == []
    for path in written:
        try:
            assert TOWN not in path.read_text(errors="ignore"), path
        except OSError:
            continue


def test_the_migration_erases_facts_forgotten_before_it(database_url: str) -> None:
    """Rows forgotten by an older version still held their text; 0013 erases them and
    their earlier versions, and leaves valid facts alone."""
    from memory.db import migrate, open_engine

    engine = open_engine(database_url, run_migrations=False)
    migrate(engine, "0012")
    insert = text("INSERT INTO facts (id, user_id, key, value, text, source_ids, confidence, status, "
                  "valid_from, supersedes, created_at, updated_at) VALUES (:id, 'u', 'home', :value, "
                  ":text, '[1]', 0.9, :status, CURRENT_TIMESTAMP, :sup, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, created_at) VALUES ('u', CURRENT_TIMESTAMP)"))
        for fact_id, value, status, sup in [(1, TOWN, "superseded", None), (2, NEW_TOWN, "forgotten", 1),
                                            (3, "chess", "valid", None)]:
            conn.execute(insert, {"id": fact_id, "value": value, "text": f"The user: {value}.",
                                  "status": status, "sup": sup})
    migrate(engine, "head")
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(text("SELECT id, value, text, status, text_sha256, "
                                                   "source_ids FROM facts ORDER BY id"))}
    assert [(rows[i].value, rows[i].text, rows[i].status) for i in (1, 2)] == [
        ("", "", "superseded"), ("", "", "forgotten")]
    assert rows[2].text_sha256 == hashlib.sha256(f"The user: {NEW_TOWN}.".encode()).hexdigest()
    assert "1" in str(rows[2].source_ids)  # provenance kept
    assert (rows[3].value, rows[3].text_sha256) == ("chess", None)
    engine.dispose()


@pytest.mark.slow
def test_the_export_button_downloads_the_json_from_memory(live_server: Any, page: Any,
                                                          tmp_path: Path) -> None:
    """In a real browser: the button still gives the user a JSON file (saved from the
    event's reply in browser memory), and the server wrote none."""
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from playwright.sync_api import expect
    from ui_support import BOT, SELECTED, send

    from assistant import Assistant, ScriptedModel, Settings

    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'ui.db'}",
                        index_turns=False, cache_mode="off", summarize_sessions=False)
    bot = Assistant(settings, model=ScriptedModel(fn=lambda messages: "Noted."))
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1, timeout=20_000)
    send(page, f"I live in {TOWN}")
    expect(page.locator(BOT).last).to_contain_text("Noted.", timeout=20_000)
    bot.flush()
    started = time.time() - 1
    page.get_by_role("tab", name="Memory").click()
    with page.expect_download(timeout=20_000) as download:
        page.locator("#lm-facts-export").click()
    assert download.value.suggested_filename == "lastmile-facts.json"
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["user_id"] == "default" and TOWN in saved["facts"][0]["text"]
    server_side = [p for p in _temp_files(started, besides=tmp_path)
                   if p.name.startswith("lastmile-facts")]
    assert server_side == []
    bot.close()
