"""Issue 16's chat operations below the page, on SQLite and PostgreSQL: stopping a turn
(twice, or after it ended, is harmless), the queue of messages sent during a reply,
chat search (scoped per user, any query safe), export, switching regenerated versions
(a fresh seed each), per-chat collection scopes, and the chat's attach path refusing a
file this server never received (the forged-path rule)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from assistant import Assistant, ScriptedModel
from assistant.reply import STOPPED
from memory.chats import attached_collection, in_scope
from ui.chat_turns import Queued, Turns

NASTY = ["%", "_", "\\", "' OR 1=1 --", "\0", "x" * 10_000, "🦓", "<script>", "   ", ""]


@pytest.fixture
def bot(settings):  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"index_turns": False, "cache_mode": "off",
                                           "summarize_sessions": False, "facts_enabled": False})
    model = ScriptedModel(fn=lambda m: f"you said: {m[-1].content}")
    with Assistant(settings, model=model) as made:
        made.scripted = model  # type: ignore[attr-defined]  # what the model saw, for the seed test
        yield made


def test_stop_keeps_the_partial_and_is_harmless_twice_or_late(bot: Assistant) -> None:
    sid = bot.sessions.new("ann").session_id
    stream = bot.stream("one two three", session_id=sid, user_id="ann")
    chunks = iter(stream)
    first = next(chunks)
    stream.stop()
    stream.stop()  # twice: still one stop
    assert list(chunks) == []
    assert stream.reply is not None and stream.reply.status == "incomplete"
    assert stream.reply.text == first and stream.reply.error == "You stopped this reply."
    stored = bot.sessions.history(sid, user_id="ann")[-1]
    assert (stored.content, stored.status, stored.error) == (first, "incomplete", STOPPED)
    stream.stop()  # after the end: nothing changes
    assert bot.sessions.history(sid, user_id="ann")[-1] == stored

    done = bot.stream("whole reply", session_id=sid, user_id="ann")
    assert done.text() == "you said: whole reply"
    done.stop()
    assert bot.sessions.history(sid, user_id="ann")[-1].status == "ok"


def test_stopping_before_the_first_chunk_still_stores_a_marked_reply(bot: Assistant) -> None:
    sid = bot.sessions.new("ann").session_id
    stream = bot.stream("hello", session_id=sid, user_id="ann")
    stream.stop()
    assert len(list(stream)) <= 1  # the turn runs to its first chunk, then ends
    stored = bot.sessions.history(sid, user_id="ann")[-1]
    assert stored.role == "assistant" and stored.error == STOPPED


def test_the_queue_keeps_every_message_and_one_runner_per_chat() -> None:
    turns = Turns()
    token = turns.claim_or_queue("ann", "s1", Queued("first"))
    assert token is not None
    assert turns.claim("ann", "s1") is None  # busy: a retry is refused, not queued
    assert turns.claim_or_queue("bob", "s1", Queued("other user")) is not None  # keyed per user

    def send(i: int) -> None:
        assert turns.claim_or_queue("ann", "s1", Queued(f"q{i}")) is None
    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drained = []
    while (item := turns.next_or_release("ann", "s1", token)) is not None:
        drained.append(item.text)
    assert sorted(drained) == sorted(f"q{i}" for i in range(20))
    assert turns.claim_or_queue("ann", "s1", Queued("again")) is not None  # free again
    assert turns.stop("ann", "s1") is False  # nothing streams: harmless
    assert turns.next_or_release("ann", "s1", object()) is None  # a stale runner changes nothing


def test_search_is_per_user_and_safe_for_any_query(bot: Assistant) -> None:
    for user, text in (("ann", "Zebra crossing"), ("bob", "zebra secrets"), ("ann", "100% sure_thing")):
        bot.chat(text, session_id=bot.sessions.new(user).session_id, user_id=user)
    hits = bot.chats.search("ann", "ZEBRA")
    assert [h.session.title for h in hits] == ["Zebra crossing"]
    assert {h.session.user_id for h in bot.chats.search("ann", "you said")} == {"ann"}
    assert [h.session.title for h in bot.chats.search("ann", "100%")] == ["100% sure_thing"]
    assert bot.chats.search("ann", "0_s") == []  # "_" is a character, not a wildcard
    for query in NASTY:
        assert all(h.session.user_id == "ann" for h in bot.chats.search("ann", query))
    assert bot.chats.search("ann", "%") == [h for h in bot.chats.search("ann", "%") if "%" in
                                            h.session.title]
    assert bot.chats.search("nobody", "zebra") == []


def test_export_has_the_chat_its_citations_and_stopped_marks(bot: Assistant) -> None:
    sid = bot.sessions.new("ann").session_id
    bot.chat("first question", session_id=sid, user_id="ann")
    stream = bot.stream("stop this", session_id=sid, user_id="ann")
    chunks = iter(stream)
    next(chunks)
    stream.stop()
    list(chunks)
    data = json.loads(bot.chats.export_json(sid, user_id="ann"))
    assert [(m["role"], m["content"]) for m in data["messages"]][:2] == [
        ("user", "first question"), ("assistant", "you said: first question")]
    assert data["messages"][-1]["stopped"] is True and "citations" in data["messages"][-1]
    markdown = bot.chats.export_markdown(sid, user_id="ann")
    assert markdown.startswith("# first question\n")
    assert "## You\n\nfirst question" in markdown and "· stopped" in markdown
    with pytest.raises(Exception, match="no session"):
        bot.chats.export_json(sid, user_id="bob")


def test_versions_switch_and_every_regenerate_draws_a_new_seed(bot: Assistant) -> None:
    model = bot.scripted  # type: ignore[attr-defined]
    sid = bot.sessions.new("ann").session_id
    bot.chat("hi", session_id=sid, user_id="ann")
    for _ in range(2):
        bot.sessions.regenerate(sid, user_id="ann").text()
    versions = bot.chats.versions(sid, user_id="ann")
    assert len(versions.ids) == 3 and versions.index == 3
    seeds = [r.seed for r in model.requests if r.metadata.get("purpose") == "chat"]
    assert seeds[0] is None and None not in seeds[1:] and len(set(seeds[1:])) == 2
    chosen = bot.chats.choose_version(sid, versions.ids[0], user_id="ann")
    assert chosen.index == 1
    live = [m.id for m in bot.sessions.history(sid, user_id="ann")
            if m.role == "assistant" and m.status != "superseded"]
    assert live == [versions.ids[0]]
    assert bot.chats.choose_version(sid, 10**9, user_id="ann").index == 1  # not a version: no-op
    with pytest.raises(Exception, match=r"no session|does not exist"):
        bot.chats.choose_version(sid, versions.ids[1], user_id="bob")


def test_a_chat_scope_is_stored_per_user_and_files_stay_with_their_chat(bot: Assistant) -> None:
    sid = bot.sessions.new("ann").session_id
    assert bot.chats.scope(sid, user_id="ann") is None
    assert in_scope("handbook", None, sid) and in_scope(attached_collection(sid), None, sid)
    assert not in_scope(attached_collection("other"), None, sid)
    bot.chats.set_scope(sid, ["handbook", attached_collection("other")], user_id="ann")
    assert bot.chats.scope(sid, user_id="ann") == (attached_collection("other"), "handbook")
    assert in_scope(attached_collection("other"), ("handbook", attached_collection("other")), sid)
    with pytest.raises(Exception, match="no session"):
        bot.chats.set_scope(sid, [], user_id="bob")
    assert bot.chats.scope(sid, user_id="bob") is None
    bot.chats.set_scope(sid, None, user_id="ann")
    assert bot.chats.scope(sid, user_id="ann") is None


def test_attach_refuses_a_path_this_server_did_not_receive(bot: Assistant, tmp_path: Path) -> None:
    from ui.chat_attach import attach_files

    secret = tmp_path / "secret.md"
    secret.write_text("db_password = hunter2\n")
    sid = bot.sessions.new("ann").session_id
    result = attach_files(bot, "ann", sid, [str(secret), {"path": str(secret)}])
    assert result.added == [] and len(result.refused) == 1
    assert "was not uploaded to this server" in result.note() and str(tmp_path) not in result.note()
    assert "sent without it" in result.note()


def test_a_restored_version_is_recalled_again_and_the_one_put_away_is_not(settings) -> None:  # type: ignore[no-untyped-def]
    answers = iter(["The vault codename is PELICAN.", "The vault codename is HERON."])
    model = ScriptedModel(fn=lambda m: next(answers) if str(m[-1].content).startswith("Give")
                          else "I am not sure.")
    cfg = settings.model_copy(update={"cache_mode": "off", "summarize_sessions": False,
                                      "facts_enabled": False})

    def recalled(bot: Assistant, probe: str) -> str:
        bot.chat(f"{probe}: what is the vault codename?", session_id=probe, user_id="ann")
        return "\n".join(str(m.content) for m in model.requests[-1].messages[:-1])

    with Assistant(cfg, model=model) as bot:
        sid = bot.sessions.new("ann").session_id
        bot.chat("Give the vault a codename.", session_id=sid, user_id="ann")
        bot.sessions.regenerate(sid, user_id="ann").text()
        bot.flush()
        shown = recalled(bot, "probe1")
        assert "HERON" in shown and "PELICAN" not in shown  # the version put away left memory
        first = bot.chats.versions(sid, user_id="ann").ids[0]
        assert bot.chats.choose_version(sid, first, user_id="ann").index == 1
        bot.flush()
        shown = recalled(bot, "probe2")
    assert "PELICAN" in shown and "HERON" not in shown  # what the chat shows is what is recalled


def test_kept_back_files_become_refusal_lines_and_anything_malformed_is_ignored() -> None:
    from ui.upload_limit import kept_back

    limit = 20_000_000
    lines = kept_back(json.dumps([{"name": "../../etc/scan.pdf", "size": 25_300_000},
                                  {"name": "../../etc/scan.pdf", "size": 25_300_000}]), limit)
    assert lines == ["scan.pdf: 25.3 MB is over the 20 MB limit (LASTMILE_INGEST_MAX_FILE_MB)."]
    for bad in (None, "", "not json", "{}", '"x"', "[1, null, []]", '[{"name": "a"}]',
                '[{"name": "a", "size": "big"}]', '[{"name": "a", "size": true}]',
                '[{"name": "a", "size": -1}]', '[{"name": "a", "size": NaN}]'):
        assert kept_back(bad, limit) == [], bad
    many = json.dumps([{"name": f"f{i}.pdf", "size": limit + i} for i in range(500)])
    assert len(kept_back(many, limit)) == 20


def test_the_memory_notice_reads_learned_updated_and_one_forget_and_undoes_an_update(
        settings) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from ui.chat_memory import changes_from, notice_html, undo

    cfg = settings.model_copy(update={"index_turns": False, "cache_mode": "off",
                                      "summarize_sessions": False, "facts_model": "rules"})
    with Assistant(cfg, model=ScriptedModel(fn=lambda m: "Noted.")) as bot:
        sid = bot.sessions.new("ann").session_id

        def say(text: str) -> list:  # type: ignore[type-arg]
            bot.chat(text, session_id=sid, user_id="ann")
            bot.flush()
            asked = [m for m in bot.sessions.history(sid, user_id="ann") if m.role == "user"][-1]
            return changes_from(bot, "ann", asked.id)

        [learned] = say("I live in Lisbon.")
        assert (learned.op, learned.text) == ("learned", "The user lives in Lisbon.")
        [updated] = say("I live in Porto now.")
        assert (updated.op, updated.previous_text) == ("updated", "The user lives in Lisbon.")
        shown = notice_html([updated])
        assert 'data-op="updated"' in shown and "(was: The user lives in Lisbon.)" in shown
        assert changes_from(bot, "bob", learned.fact_id) == []  # another user's notice is empty
        assert undo(bot, "ann", [dataclasses.asdict(updated)]) == "Undone."
        assert [f.text for f in bot.facts.list("ann")] == ["The user lives in Lisbon."]
        forgot = say("Forget where I live.")  # three versions erased: one change
        assert [(c.op, c.text, c.key, c.undoable) for c in forgot] == [("forgotten", "", "home", False)]
        assert "what you told me about your home" in notice_html(forgot)
        assert undo(bot, "ann", [dataclasses.asdict(c) for c in forgot]) == "Nothing to undo."
        assert bot.facts.list("ann") == []


def test_the_sources_table_names_files_without_server_paths(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from ui.documents_tab import sources_frame

    kept = tmp_path / "data" / "uploads" / ("ab" * 16) / "chats" / "0123abcd" / "policy.md"
    frame = sources_frame([SimpleNamespace(id=1, collection="uploads", shared=False, title="Policy",
                                           path=str(kept), chunks=2, updated_at=None)])
    assert frame.loc[0, "file"] == "policy.md"
    assert str(tmp_path) not in frame.to_csv() and "ab" * 16 not in frame.to_csv()
