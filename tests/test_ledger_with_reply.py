"""A turn's ledger row commits in its reply's transaction (issue 14: fewer round trips and
commits per turn), and a ledger failure still never costs the reply — through the real
openai SDK against the fault server, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from assistant import Assistant, Settings
from assistant.testing import Fault, FaultServer
from memory.ledger import Ledger


@pytest.fixture
def fs() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def _settings(settings: Settings, fs: FaultServer) -> Settings:
    return settings.model_copy(update={
        "providers": "openai:test-model", "openai_api_key": SecretStr("sk-test"),
        "openai_base_url": fs.url + "/v1", "retry_attempts": 1, "index_turns": False,
        "provider_connect_timeout_s": 1.0, "provider_read_timeout_s": 5.0,
        "facts_model": "rules", "summary_model": "extractive"})


def test_the_ledger_row_commits_with_the_reply(settings: Settings, fs: FaultServer) -> None:
    fs.enqueue(Fault.ok("hello there", prompt_tokens=100, completion_tokens=20))
    with Assistant(_settings(settings, fs)) as bot:
        reply = bot.chat("hi", session_id="s", user_id="u")
        assert reply.status == "ok"
        engine = bot.store.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT purpose, status, prompt_tokens FROM provider_calls "
                                     "WHERE turn_id = :t"), {"t": reply.user_message_id}).all()
            assert [tuple(r) for r in rows] == [("chat", "ok", 100)]
            if engine.dialect.name == "postgresql":  # the same transaction wrote both rows
                reply_xid = conn.scalar(text("SELECT xmin::text FROM messages WHERE id = :i"),
                                        {"i": reply.message_id})
                call_xid = conn.scalar(text("SELECT xmin::text FROM provider_calls WHERE turn_id = :t"),
                                       {"t": reply.user_message_id})
                assert reply_xid == call_xid


def test_a_failing_ledger_write_keeps_the_reply(settings: Settings, fs: FaultServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fs.enqueue(Fault.ok("still delivered", prompt_tokens=10, completion_tokens=3))

    def broken(self: Ledger, call: object, conn: object = None) -> None:
        raise OperationalError("INSERT INTO provider_calls", {}, Exception("disk full"))

    with Assistant(_settings(settings, fs)) as bot:
        monkeypatch.setattr(Ledger, "record", broken)
        reply = bot.chat("hi", session_id="s", user_id="u")
        assert (reply.status, reply.text) == ("ok", "still delivered")
        history = bot.store.history("u", "s")
        assert [(m.role, m.content) for m in history] == [("user", "hi"), ("assistant", "still delivered")]
        assert history[0].reply_state == "answered"
