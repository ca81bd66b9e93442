"""The dashboard's figures against a real database (SQLite and PostgreSQL): stage
timings stored with each reply, spend by user and purpose, fallback rate, breakers."""

from __future__ import annotations

from pydantic import SecretStr

from assistant import Assistant, ScriptedModel, Settings
from assistant.testing import Fault, FaultServer
from ui import dashboard


def test_every_reply_stores_its_stage_timings(settings: Settings) -> None:
    echo = ScriptedModel(fn=lambda messages: f"echo {messages[-1].content}")
    with Assistant(settings.model_copy(update={"index_turns": False}), model=echo) as bot:
        bot.chat("hello", session_id="s", user_id="ann")
        bot.chat("again", session_id="s", user_id="ann")
        stages = bot.history("s", user_id="ann")[-1].context["stages_ms"]
        assert set(stages) == {"guards", "storage", "context", "model", "verification"}
        assert all(isinstance(v, float) and v >= 0 for v in stages.values())
        frame = dashboard.latency_frame(bot.store.engine)
    assert sorted(set(frame["turn"])) == [1, 2]
    assert set(frame["stage"]) == {"guards", "storage", "context", "model", "verification"}
    assert (frame["ms"] >= 0).all()


def test_spend_fallback_rate_and_breakers_come_from_the_ledger(settings: Settings) -> None:
    with FaultServer() as primary:
        primary.enqueue(Fault.error(500), Fault.error(500), Fault.error(500))
        config = settings.model_copy(update={
            "providers": "openai:gpt-x,scripted", "openai_api_key": SecretStr("sk-test"),
            "openai_base_url": primary.url + "/v1", "retry_attempts": 1, "index_turns": False,
            "breaker_failure_threshold": 3, "prices": {"openai:gpt-x": [1.0, 2.0]},
            "facts_model": "rules", "summary_model": "extractive", "cache_mode": "off"})
        with Assistant(config) as bot:
            for i in range(4):  # 3 fall back (500s); the 4th reaches the recovered server
                bot.chat(f"q{i}", session_id="s", user_id="ann")
            bot.chat("later", session_id="t", user_id="bob")
            engine = bot.store.engine
            rate = dashboard.fallback_rate(engine)
            users = dashboard.spend_frame(engine, by="user")
            purposes = dashboard.spend_frame(engine, by="purpose")
            health = dashboard.breaker_states(bot.model)
            numbers = dashboard.summary_numbers(engine)
    assert 0.5 <= rate < 1.0  # ann's first three turns needed the fallback; bob's did not
    assert set(users["user"]) == {"ann", "bob"} and (users["tokens"] > 0).all()
    assert "chat" in set(purposes["purpose"])
    assert list(health["provider"]) == ["openai:gpt-x"] and health["state"][0] in (
        "closed", "open", "half_open")
    assert numbers["turns"] == 5 and numbers["failed_replies"] == 0


def test_groundedness_histogram_reads_stored_scores(settings: Settings) -> None:
    echo = ScriptedModel(fn=lambda messages: "hi")
    with Assistant(settings.model_copy(update={"index_turns": False}), model=echo) as bot:
        bot.chat("hello", session_id="s", user_id="ann")
        frame = dashboard.groundedness(bot.store.engine)
    assert list(frame.columns) == ["score", "replies"]
    assert frame["replies"].sum() in (0, 1)  # scored only when sources were shown
