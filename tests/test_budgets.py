"""Budgets that enforce: soft alerts (row + webhook), hard refusals before the provider is
called (falling back to a free member, or a polite stored reply), and a cap that holds
under 20 concurrent turns — real openai SDK, fault server, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import SecretStr, ValidationError

from assistant import Assistant, Settings
from assistant.errors import BudgetExceeded
from assistant.providers.base import approx_message_tokens
from assistant.testing import Fault, FaultServer
from memory.ledger import today

MAX_TOKENS = 50
PROMPT = "Be brief."
PRICE = (1000.0, 2000.0)  # USD per 1M tokens: $0.001 in, $0.002 out per token
#: Every turn below is "q" in a fresh context, so the reservation estimate is known exactly.
PROMPT_TOKENS = approx_message_tokens([SystemMessage(PROMPT), HumanMessage("q")])
CALL_NUSD = PROMPT_TOKENS * 1_000_000 + MAX_TOKENS * 2_000_000  # estimate == reported cost


@pytest.fixture
def fs() -> Iterator[FaultServer]:
    # The server claims exactly the estimated usage, so reserve == settle for every call.
    with FaultServer(default=Fault.ok("paid answer", prompt_tokens=PROMPT_TOKENS,
                                      completion_tokens=MAX_TOKENS)) as server:
        yield server


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def budget_settings(settings: Settings, fs: FaultServer, providers: str, **extra: object) -> Settings:
    return settings.model_copy(update={
        "providers": providers, "openai_api_key": SecretStr("sk-test"),
        "openai_base_url": fs.url + "/v1", "retry_attempts": 1, "index_turns": False,
        "max_reply_tokens": MAX_TOKENS, "system_prompt": PROMPT,
        "prices": {"openai:test-model": PRICE},
        # Background fact extraction and summaries are paid calls too (and budgeted); these
        # tests count chat calls only, so those use the deterministic extractors.
        "facts_model": "rules", "summary_model": "extractive", **extra})


def test_soft_limit_alerts_once_then_hard_limit_refuses_politely(
        settings: Settings, fs: FaultServer, hook: ThreadingHTTPServer) -> None:
    cap = 3.5 * CALL_NUSD / 1e9  # room for 3 calls; half of it is passed by the 2nd
    url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
    config = budget_settings(settings, fs, "openai:test-model", budget_user_daily_usd=cap,
                             budget_soft_fraction=0.5, budget_alert_webhook=url)
    with Assistant(config) as bot:
        replies = [bot.chat("q", session_id=f"s{i}", user_id="u") for i in range(4)]
        other = bot.chat("q", session_id="x", user_id="someone-else")
        bot.flush()
        alerts = bot.ledger.alerts()  # type: ignore[union-attr]
        refused = bot.ledger.calls(turn_id=replies[3].user_message_id)  # type: ignore[union-attr]
        history = bot.history("s3", user_id="u")
        counters = bot.budget.counters()  # type: ignore[union-attr]
    assert [r.status for r in replies] == ["ok", "ok", "ok", "error"] and other.ok
    assert len(fs.requests) == 4  # the refused call never reached the provider
    assert replies[3].error == BudgetExceeded.user_message
    assert [(m.role, m.content, m.status) for m in history] == [
        ("user", "q", "ok"), ("assistant", "", "error")]
    assert [(r["status"], r["error_kind"], r["cost_usd"]) for r in refused] == [
        ("refused", "BudgetExceeded", 0.0)]
    assert sorted((a["scope"], a["level"]) for a in alerts) == [("user:u", "hard"), ("user:u", "soft")]
    soft = next(a for a in alerts if a["level"] == "soft")
    assert soft["day"] == today() and soft["spent_usd"] == pytest.approx(2 * CALL_NUSD / 1e9)
    posted = sorted(hook.received, key=lambda a: a["event"])  # type: ignore[attr-defined]
    assert [(p["event"], p["scope"]) for p in posted] == [
        ("budget.hard_limit", "user:u"), ("budget.soft_limit", "user:u")]
    assert posted[1]["cap_usd"] == pytest.approx(cap)
    assert counters["user:u"] == (0, 3 * CALL_NUSD)


def test_hard_limit_falls_back_to_the_free_member(settings: Settings, fs: FaultServer) -> None:
    config = budget_settings(settings, fs, "openai:test-model,scripted",
                             budget_global_daily_usd=1.5 * CALL_NUSD / 1e9)
    with Assistant(config) as bot:
        paid, free = (bot.chat("q", session_id=f"s{i}") for i in range(2))
        rows = bot.ledger.calls()  # type: ignore[union-attr]
    assert (paid.provider, free.provider) == ("openai:test-model", "scripted")
    assert paid.ok and free.ok and free.text.startswith("(scripted)") and len(fs.requests) == 1
    assert [(r["provider"], r["status"]) for r in rows] == [
        ("openai:test-model", "ok"), ("openai:test-model", "refused"), ("scripted", "ok")]
    assert rows[-1]["cost_usd"] == 0.0


def test_a_broken_webhook_never_breaks_a_turn(settings: Settings, fs: FaultServer) -> None:
    config = budget_settings(settings, fs, "openai:test-model", budget_user_daily_usd=1.0,
                             budget_soft_fraction=0.0001,
                             budget_alert_webhook="http://127.0.0.1:9/nothing-listens")
    with Assistant(config) as bot:
        reply = bot.chat("q", session_id="s")
        bot.flush()
        assert reply.ok and [a["level"] for a in bot.ledger.alerts()] == ["soft"]  # type: ignore[union-attr]


def test_a_dead_webhook_is_logged_once_until_it_answers(settings: Settings,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Three alerts to a receiver that is down: one warning, not three."""
    from memory.budget import Budget
    from memory.db import open_engine

    budget = Budget(open_engine(settings.resolved_database_url),
                    webhook="http://127.0.0.1:9/nothing-listens", webhook_timeout_s=2.0)
    caplog.set_level(logging.DEBUG, logger="memory.budget")
    for day in range(3):
        budget.notify([{"event": "budget.soft_limit", "scope": "user", "day": day}])
        budget.flush()
    failed = [r for r in caplog.records if r.name == "memory.budget" and "webhook" in r.getMessage()]
    assert len(failed) == 3
    assert [r.levelno for r in failed] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


@pytest.mark.parametrize("scope", ["user", "global"])
def test_a_cap_holds_under_20_concurrent_turns(settings: Settings, fs: FaultServer, scope: str) -> None:
    paid_calls = 7
    cap = (paid_calls + 0.5) * CALL_NUSD / 1e9
    config = budget_settings(settings, fs, "openai:test-model,scripted",
                             **{f"budget_{scope}_daily_usd": cap})
    barrier = threading.Barrier(20)
    with Assistant(config) as bot:
        def turn(i: int):  # type: ignore[no-untyped-def]
            barrier.wait()
            return bot.chat("q", session_id=f"s{i}", user_id="u" if scope == "user" else f"u{i}")

        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(turn, range(20)))
        rows = bot.ledger.calls()  # type: ignore[union-attr]
        counters = bot.budget.counters()  # type: ignore[union-attr]
        spent = bot.ledger.spend()  # type: ignore[union-attr]
    assert all(r.ok for r in replies), [r.error for r in replies if not r.ok]
    by = [r.provider for r in replies]
    assert by.count("openai:test-model") == paid_calls and by.count("scripted") == 20 - paid_calls
    assert len(fs.requests) == paid_calls  # refused calls never reached the provider
    statuses = [(r["provider"], r["status"]) for r in rows]
    assert statuses.count(("openai:test-model", "ok")) == paid_calls
    assert statuses.count(("openai:test-model", "refused")) == 20 - paid_calls
    assert counters[scope if scope == "global" else "user:u"] == (0, paid_calls * CALL_NUSD)
    assert spent == pytest.approx(paid_calls * CALL_NUSD / 1e9) and spent <= cap


@pytest.mark.parametrize("env,value", [
    ("LASTMILE_BUDGET_USER_DAILY_USD", "-1"), ("LASTMILE_BUDGET_GLOBAL_DAILY_USD", "1e12"),
    ("LASTMILE_BUDGET_SOFT_FRACTION", "0"), ("LASTMILE_BUDGET_SOFT_FRACTION", "1.5"),
    ("LASTMILE_BUDGET_ALERT_WEBHOOK", "ftp://example"), ("LASTMILE_PRICES", '{"gpt-4o": [1, 2]}'),
    ("LASTMILE_PRICES", '{"openai:x": [-1, 2]}'), ("LASTMILE_PRICES", '{"openai:x": [1]}'),
])
def test_nonsense_budget_settings_are_rejected_at_load(monkeypatch: pytest.MonkeyPatch, env: str,
                                                       value: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError):
        Settings()


def test_an_admin_changes_caps_at_run_time_for_every_process(settings: Settings, fs: FaultServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import memory.budget as budget_module
    from memory.budget import Budget

    monkeypatch.setattr(budget_module, "CAPS_REFRESH_S", 0.0)  # no waiting for the re-read
    config = budget_settings(settings, fs, "openai:test-model")  # no cap configured
    with Assistant(config) as bot:
        assert bot.chat("q", session_id="a", user_id="u").ok
        admin = Budget(bot.store.engine)  # another process's view of the same database
        admin.set_cap("user", 0.5 * CALL_NUSD / 1e9, by="ada")  # less than one call
        refused = bot.chat("q", session_id="b", user_id="u")
        assert refused.status == "error" and refused.error == BudgetExceeded.user_message
        assert bot.budget.caps_usd() == {"user": pytest.approx(0.5 * CALL_NUSD / 1e9), "global": None}
        admin.set_cap("user", None, by="ada")  # no cap at all
        assert bot.chat("q", session_id="c", user_id="u").ok
        admin.set_cap("global", 0.0, by="ada")
        assert bot.chat("q", session_id="d", user_id="v").status == "error"
        admin.reset_cap("global")
        admin.reset_cap("user")  # back to the settings (none)
        assert bot.chat("q", session_id="e", user_id="v").ok and bot.budget.caps_usd() == {
            "user": None, "global": None}
    assert len(fs.requests) == 3  # refused calls never reached the provider
    with pytest.raises(ValueError, match="between 0 and"):
        admin.set_cap("user", -1)
    with pytest.raises(ValueError, match="between 0 and"):
        admin.set_cap("user", float("nan"))
    with pytest.raises(ValueError, match="scope must be"):
        admin.set_cap("team", 1.0)
