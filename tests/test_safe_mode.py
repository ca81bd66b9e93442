"""The kill switch and safe mode: one flag in the database stops every remote call, in
every process, before any network I/O (the fault server counts what arrives); turns
then answer from the local model or retrieval-only, and say so.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from sqlalchemy import text

from assistant import Assistant, Settings
from assistant.layers.killswitch import ControlFlags, KillSwitchModel
from assistant.errors import ProviderUnavailable, RemoteCallsDisabled
from assistant.testing import FaultServer
from assistant.providers import ModelRequest, ScriptedModel, ScriptedReply
from assistant.layers.fallback import FallbackModel
from assistant.layers.resilience import BreakerModel
from assistant.layers.safemode import RETRIEVAL_LABEL, SafeModeModel, retrieval_reply
from memory.db import open_engine

SNIPPETS = [
    {"id": "msg-12", "text": "User: my passport expires in March 2027", "source": "memory",
     "date": "2026-05-03"},  # the shapes assistant.turn_context puts in ctx.snippets
    {"id": "doc-4#2", "text": "Renewal takes   six weeks.\n", "source": "passport-guide.pdf p.2",
     "date": None},
    {"id": "x", "text": "", "source": "empty"},  # nothing to quote: skipped
]

#: Background model calls (fact extraction, summaries) and the sample document corpus
#: are other features; off here so the fault server counts only what these tests cause.
QUIET = {"facts_enabled": False, "summarize_sessions": False, "sample_corpus": False}


def _request(purpose: str = "chat", snippets=None) -> ModelRequest:
    return ModelRequest([SystemMessage(content="sys"), HumanMessage(content="when does my passport expire?")],
                        metadata={"purpose": purpose, "user_id": "u", "snippets": snippets or []})


def _settings(tmp_path, database_url: str, fs: FaultServer, **kw) -> Settings:
    return Settings(data_dir=tmp_path / "d", database_url=database_url, providers="openai:test-model",
                    openai_api_key="sk-test", openai_base_url=fs.url + "/v1",  # type: ignore[arg-type]
                    index_turns=False, **QUIET, retry_attempts=1, breaker_failure_threshold=2, **kw)


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """`lastmile ...` in a separate process: another server sharing the database."""
    env = {**os.environ, "LASTMILE_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_retrieval_reply_quotes_sources_or_says_it_cannot() -> None:
    reply = retrieval_reply(SNIPPETS, reason="remote models are switched off")
    assert '1. "User: my passport expires in March 2027" — memory (msg-12), 2026-05-03' in reply
    assert '2. "Renewal takes six weeks." — passport-guide.pdf p.2 (doc-4#2)' in reply
    assert "3." not in reply and "Your message is saved" in reply
    assert reply == retrieval_reply(SNIPPETS, reason="remote models are switched off")  # deterministic
    honest = retrieval_reply([], reason="remote models are switched off")
    assert honest.startswith("I can't answer right now") and "saved" in honest
    long = retrieval_reply([{"text": "word " * 200, "id": "m1"}], reason="r")
    assert "…" in long and "— m1" in long


def test_kill_switch_stops_remote_calls_and_safe_mode_says_so(tmp_path, database_url) -> None:
    with FaultServer() as fs:
        with Assistant(_settings(tmp_path, database_url, fs)) as bot:
            before = bot.chat("hello", session_id="s")
            bot.set_kill_switch(True, by="ops")  # takes effect at once in this process
            replies = [bot.chat(f"still there {i}?", session_id="s") for i in range(3)]
            assert len(fs.requests) == 1  # nothing reached the server while it was on
            rows_while_killed = len(bot.ledger.calls())
            bot.set_kill_switch(False)
            after = bot.chat("back?", session_id="s")
            breaker = next(m for m in _walk(bot.model) if isinstance(m, BreakerModel)).breaker
            history = bot.history("s")
    assert before.provider == "openai:test-model" and before.notice is None
    for reply in replies:
        assert reply.ok and reply.provider == RETRIEVAL_LABEL
        assert reply.notice and reply.notice.startswith("Safe mode: remote models are switched off")
        assert "Your message is saved" in reply.text
    assert rows_while_killed == 1  # no ledger row: no call was made
    assert after.provider == "openai:test-model" and after.text == "echo: back?"
    # The refusals were no failures: the circuit never opened.
    assert breaker.state == "closed" and breaker.snapshot()["total_failures"] == 0
    assert [m.content for m in history if m.role == "user"] == [
        "hello", "still there 0?", "still there 1?", "still there 2?", "back?"]


def test_retrieval_only_quotes_what_the_turn_recalled(tmp_path, database_url) -> None:
    with FaultServer() as fs:
        settings = _settings(tmp_path, database_url, fs).model_copy(update={"index_turns": True})
        with Assistant(settings) as bot:
            bot.chat("My passport expires in March 2027.", session_id="trip", user_id="ann")
            bot.chat("I like green tea.", session_id="other", user_id="bob")
            bot.flush()  # the turns are indexed for recall
            bot.set_kill_switch(True)
            reply = bot.chat("When does my passport expire?", session_id="new", user_id="ann")
            bobs = bot.chat("When does my passport expire?", session_id="b2", user_id="bob")
            bot.set_kill_switch(False)
    assert len(fs.requests) == 2
    assert reply.provider == RETRIEVAL_LABEL
    assert reply.notice.endswith("answering with quoted snippets from your memories and documents only.")
    assert '"User: My passport expires in March 2027." — memory (msg-1)' in reply.text
    assert "passport" not in bobs.text.replace("When does my passport expire?", "")  # only his own
    assert "green tea" in bobs.text or bobs.text.startswith("I can't answer right now")


def test_a_switch_thrown_by_another_process_is_seen(tmp_path, database_url, monkeypatch,
                                                    capsys) -> None:
    with FaultServer() as fs:
        with Assistant(_settings(tmp_path, database_url, fs, control_refresh_s=0.0)) as bot:
            bot.chat("hello", session_id="s")
            done = _cli(database_url, "admin", "kill-switch", "on", "--by", "oncall")
            assert done.returncode == 0, done.stderr
            assert "kill switch ON" in done.stdout
            killed = bot.chat("and now?", session_id="s")
            from assistant.cli import main

            monkeypatch.setenv("LASTMILE_DATABASE_URL", database_url)
            assert main(["admin", "kill-switch", "status"]) == 0
            status = capsys.readouterr().out
            assert main(["admin", "kill-switch", "off"]) == 0
            back = bot.chat("and now?", session_id="s")
    assert len(fs.requests) == 2
    assert killed.provider == RETRIEVAL_LABEL and killed.notice
    assert "kill switch ON" in status and "database" in status
    assert back.text == "echo: and now?"


def test_reads_are_cached_briefly_and_survive_a_database_error(database_url, tmp_path) -> None:
    engine = open_engine(database_url)
    now = [0.0]
    reader = ControlFlags(engine, refresh_s=1.5, clock=lambda: now[0])
    assert reader.kill_switch() is False
    with engine.begin() as conn:  # another process writes the flag directly
        conn.execute(text("INSERT INTO control_flags (name, value, updated_at) "
                          "VALUES ('kill_switch', 'on', CURRENT_TIMESTAMP)"))
    assert reader.kill_switch() is False  # still within the refresh window
    now[0] += 1.6
    assert reader.kill_switch() is True
    assert reader.status()["updated_by"] is None and reader.status()["source"] == "database"
    engine.dispose()
    # A database without the table (or down): no exception, the default state.
    bare = open_engine(f"sqlite:///{tmp_path / 'bare.db'}", run_migrations=False)
    assert ControlFlags(bare).kill_switch() is False
    bare.dispose()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_setting_forces_the_switch_on(tmp_path, database_url, provider) -> None:
    with FaultServer() as fs:
        settings = Settings(data_dir=tmp_path / "d", database_url=database_url,
                            providers=f"{provider}:test-model", kill_switch=True, index_turns=False,
                            openai_api_key="sk-test", openai_base_url=fs.url + "/v1",  # type: ignore[arg-type]
                            anthropic_api_key="sk-test", anthropic_base_url=fs.url,  # type: ignore[arg-type]
                            **QUIET)
        with Assistant(settings) as bot:
            bot.set_kill_switch(False)  # the database says off; the setting wins
            reply = bot.chat("hello", session_id="s")
            assert bot.ledger.calls() == []
    assert len(fs.requests) == 0 and reply.provider == RETRIEVAL_LABEL


def test_safe_mode_answers_from_the_local_member_never_the_remote() -> None:
    flags = ControlFlags(None, forced_kill=True)
    remote = ScriptedModel(fn=lambda m: "remote", provider="openai", model="m")
    local = ScriptedModel(fn=lambda m: "local answer", provider="local")
    model = SafeModeModel(FallbackModel([KillSwitchModel(remote, flags), local]), flags, local=local)
    chunks = list(model.request(_request(snippets=SNIPPETS)))
    assert "".join(c.text for c in chunks) == "local answer" and not remote.requests
    assert all(c.provider == "local" for c in chunks)
    assert chunks[-1].notice == ("Safe mode: remote models are switched off; "
                                          "answering from the local model (local).")
    # Summaries and extraction get the local model too...
    assert "".join(c.text for c in model.request(_request("summary"))) == "local answer"
    # ...and a local model that fails mid-reply is replaced by quoted snippets.
    local.enqueue(ScriptedReply("half an", fail_after=1))
    chunks = list(model.request(_request(snippets=SNIPPETS)))
    assert chunks[1].restart and chunks[1].discarded == "half "
    assert "passport-guide.pdf" in "".join(c.text for c in chunks[2:])


def test_without_a_local_model_only_chat_gets_a_reply() -> None:
    flags = ControlFlags(None, forced_kill=True)
    remote = ScriptedModel(fn=lambda m: "remote", provider="openai", model="m")
    model = SafeModeModel(KillSwitchModel(remote, flags), flags)
    chunks = list(model.request(_request(snippets=SNIPPETS)))
    assert chunks[-1].notice.endswith("quoted snippets from your memories and documents only.")
    assert "March 2027" in "".join(c.text for c in chunks)
    with pytest.raises(RemoteCallsDisabled):  # a summary must not be "I can't answer"
        list(model.request(_request("summary")))
    with pytest.raises(RemoteCallsDisabled):  # and the guard alone refuses before any call
        list(KillSwitchModel(remote, flags).request(_request()))
    assert not remote.requests


def test_safe_mode_on_outage_answers_retrieval_only() -> None:
    flags = ControlFlags(None)
    down = ScriptedModel([ProviderUnavailable("down"), ScriptedReply("partial words here", fail_after=1)],
                         provider="openai", model="m")
    model = SafeModeModel(down, flags, on_outage=True)
    chunks = list(model.request(_request(snippets=SNIPPETS)))
    assert chunks[0].notice.startswith("Degraded: no model could be reached")
    assert "I can't write a full answer right now (every model is unreachable)" in chunks[0].text
    chunks = list(model.request(_request()))  # broke mid-reply: the partial text is dropped
    assert chunks[0].text == "partial " and chunks[1].restart
    assert "nothing in your memories or documents matches" in "".join(c.text for c in chunks[2:])
    with pytest.raises(ProviderUnavailable):  # off by default: the error surfaces as before
        list(SafeModeModel(ScriptedModel([ProviderUnavailable("down")]), flags).request(_request()))


@pytest.mark.slow
def test_kill_switch_with_the_real_local_model(tmp_path) -> None:
    with FaultServer() as fs:
        settings = Settings(data_dir=tmp_path / "d", providers="openai:test-model,local",
                            openai_api_key="sk-test", openai_base_url=fs.url + "/v1",  # type: ignore[arg-type]
                            index_turns=False, **QUIET, max_reply_tokens=8, local_n_ctx=1024, kill_switch=True)
        with Assistant(settings) as bot:
            reply = bot.chat("Say hello.", session_id="s")
    assert len(fs.requests) == 0
    assert reply.ok and reply.provider == "local:SmolLM2-135M-Instruct" and reply.text.strip()
    assert reply.notice == ("Safe mode: remote models are switched off; answering from the local "
                            "model (local:SmolLM2-135M-Instruct).")


def _walk(model):
    """Every model in a composed chain."""
    yield model
    for member in getattr(model, "models", None) or ():
        yield from _walk(member)
    if (inner := getattr(model, "inner", None)) is not None:
        yield from _walk(inner)


def test_the_switch_needs_a_shared_database() -> None:
    from assistant.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="needs a database"):
        ControlFlags(None).set_kill_switch(True)
    assert ControlFlags(None).status() == {"kill_switch": False, "source": "default",
                                           "updated_by": None, "updated_at": None}
