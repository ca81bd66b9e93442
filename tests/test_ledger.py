"""The cost ledger: one row per provider attempt, priced from the usage the provider
reported, read back by ``lastmile usage`` — through the REAL openai SDK against the
fault server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from assistant import Assistant, Settings
from assistant.cli import main
from assistant.testing import Fault, FaultServer
from memory.db import migrate, open_engine
from memory.ledger import CallRecord, Ledger, PriceTable, today

PRICE = (2.0, 10.0)  # USD per 1M input / output tokens for openai:test-model


@pytest.fixture
def fs() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def make_settings(settings: Settings, fs: FaultServer, providers: str = "openai:test-model",
                  **extra: object) -> Settings:
    return settings.model_copy(update={
        "providers": providers, "openai_api_key": SecretStr("sk-test"), "openai_base_url": fs.url + "/v1",
        "retry_attempts": 2, "retry_initial_wait_s": 0.0, "retry_max_wait_s": 0.01,
        "provider_connect_timeout_s": 1.0, "provider_read_timeout_s": 5.0, "index_turns": False,
        "prices": {"openai:test-model": PRICE},
        # Background extraction/summaries would add rows of their own; tests that count
        # chat rows keep them deterministic (the test below counts them on purpose).
        "facts_model": "rules", "summary_model": "extractive", **extra})


def usd(prompt: int, completion: int) -> float:
    return (prompt * PRICE[0] + completion * PRICE[1]) / 1e6


def usage_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, database_url: str,
               *args: str) -> dict:
    monkeypatch.setenv("LASTMILE_DATABASE_URL", database_url)
    capsys.readouterr()
    assert main(["usage", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_ledger_and_usage_command_agree_with_the_reported_tokens(
        settings: Settings, fs: FaultServer, database_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    fs.enqueue(Fault.ok("hello there", prompt_tokens=1000, completion_tokens=200),
               Fault.ok("again", prompt_tokens=3000, completion_tokens=400),
               Fault.ok("more", prompt_tokens=500, completion_tokens=50))
    with Assistant(make_settings(settings, fs)) as bot:
        first = bot.chat("hi", session_id="a", user_id="u1")
        bot.chat("hi", session_id="b", user_id="u2")
        bot.chat("and?", session_id="a", user_id="u1")
        rows = bot.ledger.calls()  # type: ignore[union-attr]
    assert first.ok and first.usage.prompt_tokens == 1000
    assert [(r["user_id"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("u1", 1000, 200), ("u2", 3000, 400), ("u1", 500, 50)]
    assert [r["cost_usd"] for r in rows] == pytest.approx([usd(1000, 200), usd(3000, 400), usd(500, 50)])
    row = rows[0]
    assert (row["provider"], row["model"], row["purpose"], row["status"]) == (
        "openai:test-model", "test-model", "chat", "ok")
    assert (row["session_key"], row["turn_id"], row["day"]) == ("a", first.user_message_id, today())
    assert row["conversation_id"] is not None and row["latency_ms"] > 0

    report = usage_json(monkeypatch, capsys, database_url, "--by", "user")
    assert report["rows"] == [
        {"user": "u1", "calls": 2, "prompt_tokens": 1500, "completion_tokens": 250,
         "cost_usd": pytest.approx(usd(1500, 250)), "failures": 0, "refused": 0},
        {"user": "u2", "calls": 1, "prompt_tokens": 3000, "completion_tokens": 400,
         "cost_usd": pytest.approx(usd(3000, 400)), "failures": 0, "refused": 0}]
    assert report["total_cost_usd"] == pytest.approx(usd(4500, 650))
    only = usage_json(monkeypatch, capsys, database_url, "--user", "u2")
    assert [(r["user"], r["day"], r["purpose"], r["calls"]) for r in only["rows"]] == [
        ("u2", today(), "chat", 1)]
    assert usage_json(monkeypatch, capsys, database_url, "--since", "2999-01-01")["rows"] == []
    assert main(["usage"]) == 0  # the rich table
    table = capsys.readouterr().out
    assert "u1" in table and "u2" in table and f"{usd(4500, 650):.6f}" in table


def test_each_retry_attempt_is_a_row_of_the_same_turn(settings: Settings, fs: FaultServer) -> None:
    fs.enqueue(Fault.error(500), Fault.ok("fine", prompt_tokens=40, completion_tokens=2))
    with Assistant(make_settings(settings, fs)) as bot:
        reply = bot.chat("hi", session_id="s")
        rows = bot.ledger.calls(turn_id=reply.user_message_id)  # type: ignore[union-attr]
    assert reply.ok and len(fs.requests) == 2
    assert [(r["status"], r["error_kind"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("error", "ProviderUnavailable", 0, 0), ("ok", None, 40, 2)]
    assert [r["cost_usd"] for r in rows] == pytest.approx([0.0, usd(40, 2)])


def test_each_fallback_member_is_a_row_and_the_free_one_costs_nothing(
        settings: Settings, fs: FaultServer) -> None:
    fs.enqueue(Fault.error(500), Fault.error(503))
    with Assistant(make_settings(settings, fs, "openai:test-model,scripted")) as bot:
        reply = bot.chat("hi", session_id="s")
        rows = bot.ledger.calls(turn_id=reply.user_message_id)  # type: ignore[union-attr]
    assert reply.ok and reply.provider == "scripted"
    assert [(r["provider"], r["status"], r["cost_usd"]) for r in rows] == [
        ("openai:test-model", "error", 0.0), ("openai:test-model", "error", 0.0),
        ("scripted", "ok", 0.0)]
    assert rows[-1]["prompt_tokens"] > 0  # scripted reports usage too


def test_unknown_remote_model_is_recorded_without_cost_and_warned_once(
        settings: Settings, fs: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="memory.ledger"), \
            Assistant(make_settings(settings, fs, "openai:mystery-model", prices={})) as bot:
        assert bot.chat("one", session_id="s").ok and bot.chat("two", session_id="s").ok
        rows = bot.ledger.calls()  # type: ignore[union-attr]
    assert [r["cost_usd"] for r in rows] == [None, None]
    assert [r["prompt_tokens"] > 0 for r in rows] == [True, True]
    warnings = [r for r in caplog.records if "no price for openai:mystery-model" in r.getMessage()]
    assert len(warnings) == 1


def test_price_table_globs_overrides_and_free_providers() -> None:
    table = PriceTable({"openai:gpt-4o-mini": (1.0, 1.0), "openai:*": (5.0, 6.0)})
    assert table.price("openai:gpt-4o-mini") == (1.0, 1.0)  # exact beats the built-in glob
    assert table.price("openai:gpt-4o-mini-2024-07-18") == (5.0, 6.0)  # configured glob first
    assert PriceTable().price("openai:gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert PriceTable().price("anthropic:claude-sonnet-4-5-20250929") == (3.0, 15.0)
    assert PriceTable().price("local:SmolLM2") == (0.0, 0.0) and PriceTable().price("scripted") == (0.0, 0.0)
    assert PriceTable().price("anthropic:claude-opus-9") is None
    assert PriceTable.nusd((0.15, 0.60), 1_000_000, 1_000_000) == 750_000_000  # $0.75
    assert PriceTable.nusd((0.15, 0.60), 1, 0) == 150  # rounded up, never down


def test_a_call_outside_any_conversation_is_recorded(database_url: str) -> None:
    ledger = Ledger(open_engine(database_url))
    ledger.record(CallRecord(provider="openai:gpt-4o-mini", model="gpt-4o-mini", status="ok",
                             purpose="summary", prompt_tokens=2000, completion_tokens=100,
                             cost_usd=0.00036))
    ledger.record(CallRecord(provider="openai:gpt-4o-mini", status="refused", purpose="summary",
                             user_id="ghost", session_key="nope"))
    rows = ledger.calls()
    assert [(r["conversation_id"], r["purpose"], r["status"]) for r in rows] == [
        (None, "summary", "ok"), (None, "summary", "refused")]
    report = ledger.usage_report(("purpose",))
    assert report == [{"purpose": "summary", "calls": 2, "prompt_tokens": 2000, "completion_tokens": 100,
                       "cost_usd": pytest.approx(0.00036), "failures": 0, "refused": 1}]
    assert ledger.spend() == pytest.approx(0.00036) and ledger.spend("ghost") == 0.0
    with pytest.raises(ValueError, match="cannot group by"):
        ledger.usage_report(("colour",))


def test_migration_0003_keeps_old_rows_and_downgrades(database_url: str) -> None:
    engine = open_engine(database_url, run_migrations=False)
    migrate(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, created_at) VALUES ('u', '2026-01-02 03:04:05')"))
        conn.execute(text("INSERT INTO conversations (user_id, key, title, created_at, updated_at) "
                          "VALUES ('u', 's', 't', '2026-01-02 03:04:05', '2026-01-02 03:04:05')"))
        conn.execute(text("INSERT INTO provider_calls (conversation_id, user_id, provider, status, "
                          "started_at) SELECT id, 'u', 'local', 'ok', '2026-01-02 03:04:05' "
                          "FROM conversations"))
    migrate(engine)
    rows = Ledger(engine).calls()
    assert [(r["provider"], r["purpose"], r["day"]) for r in rows] == [("local", "chat", "2026-01-02")]
    migrate(engine, "0002")
    migrate(engine)
    assert len(Ledger(engine).calls()) == 1


def test_background_fact_extraction_is_in_the_ledger_with_its_purpose(
        settings: Settings, fs: FaultServer) -> None:
    config = make_settings(settings, fs, facts_model="chat",
                           job_backoff_initial_s=0.01, job_backoff_max_s=0.05, job_poll_s=0.05)
    fs.enqueue(Fault.ok("Noted."), Fault.ok('{"facts": []}'))
    with Assistant(config) as bot:
        reply = bot.chat("I live in Lisbon.", session_id="s", user_id="ann")
        bot.flush()
        rows = bot.ledger.calls(user_id="ann")  # type: ignore[union-attr]
    assert reply.ok
    purposes = [r["purpose"] for r in rows]
    assert purposes[0] == "chat" and "facts" in purposes[1:]
    assert all(r["cost_usd"] > 0 for r in rows if r["status"] == "ok")
