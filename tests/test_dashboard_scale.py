"""The dashboard at 1,000 stored turns (SQLite and PostgreSQL): every plotted axis is a
number or a time, sorted (a string axis sorts 1, 10, 11, 2); the latency plot aggregates
by time so it stays readable; each empty panel explains itself; the drift panel and the
canary history read their tables."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import insert

from assistant import Assistant, ScriptedModel, Settings
from memory.db import open_engine
from memory.models import Conversation, Message, User, utcnow
from ui import dashboard
from ui.dashboard_tab import figures

TURNS = 1000
EXAMPLE = Path(__file__).parents[1] / "assistant" / "ops" / "suites" / "example.yaml"


def _store_turns(engine: Any, n: int, *, span: timedelta) -> None:
    """``n`` answered turns spread evenly over ``span`` up to now, in one transaction."""
    start = utcnow() - span
    step = span / n
    with engine.begin() as conn:
        conn.execute(insert(User).values(id="ann", created_at=start))
        conv = conn.execute(insert(Conversation).values(user_id="ann", key="s", title="t", created_at=start,
                                                        updated_at=start)).inserted_primary_key[0]
        rows = []
        for i in range(n):
            at = start + step * i
            stages = {"guards": 1.0 + i % 3, "context": 5.0, "model": 100.0 + i % 50, "storage": 2.0,
                      "verification": 3.0}
            common = {"conversation_id": conv, "user_id": "ann", "status": "ok"}
            rows += [{**common, "role": "user", "content": f"q{i}", "created_at": at,
                      "reply_state": "answered", "latency_ms": None, "provider": None, "context": None},
                     {**common, "role": "assistant", "content": f"a{i}",
                      "created_at": at + timedelta(seconds=1), "reply_state": None, "latency_ms": 111.0,
                      "provider": "local", "context": {"stages_ms": stages}}]
        conn.execute(insert(Message), rows)


def _numeric_sorted(column: pd.Series) -> bool:
    numeric = pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column)
    return bool(numeric and column.is_monotonic_increasing)


def test_a_thousand_turns_plot_on_sorted_numeric_axes(settings: Settings) -> None:
    engine = open_engine(settings.resolved_database_url)
    _store_turns(engine, TURNS, span=timedelta(days=3))
    frame, x = dashboard.latency_series(engine)
    assert x == "time" and _numeric_sorted(frame["time"])
    assert frame["time"].nunique() <= 40  # readable: at most 40 bars, not 1,000
    assert frame.groupby("time")["turns"].max().sum() == TURNS  # every turn is in a bucket
    assert set(frame["stage"]) == {"guards", "context", "model", "storage", "verification"}
    per_turn = dashboard.latency_frame(engine, limit=TURNS)
    assert _numeric_sorted(per_turn.drop_duplicates("turn")["turn"])
    assert sorted(per_turn["turn"].unique()) == list(range(1, TURNS + 1))
    with Assistant(settings.model_copy(update={"index_turns": False, "providers": "local"}),
                   model=ScriptedModel(["hi"])) as bot:
        shown = figures(bot)
    assert shown["latency_time_box"]["visible"] and not shown["latency_turn_box"]["visible"]
    assert _numeric_sorted(shown["latency_time"]["time"]) and "1000 turns" in shown["latency_note"]
    for name, column in (("cost", "day"), ("tokens", "day"), ("drift", "time"), ("canaries", "time")):
        assert _numeric_sorted(shown[name][column]), name
    engine.dispose()


def test_few_turns_plot_one_bar_per_numbered_turn(settings: Settings) -> None:
    engine = open_engine(settings.resolved_database_url)
    _store_turns(engine, 12, span=timedelta(minutes=30))
    frame, x = dashboard.latency_series(engine)
    engine.dispose()
    assert x == "turn" and frame["turn"].dtype == "int64"
    assert list(frame.drop_duplicates("turn")["turn"]) == list(range(1, 13))  # 1, 2, … 10, 11, 12


def test_every_empty_panel_says_why(settings: Settings) -> None:
    with Assistant(settings.model_copy(update={"index_turns": False, "providers": "local"}),
                   model=ScriptedModel(["hi"])) as bot:
        bot.chat("hello", session_id="s", user_id="ann")
        shown = figures(bot)
    cost_note, health, health_note = shown["cost_note"], shown["health"], shown["health_note"]
    grounded_note, drift_text, canary_note = shown["grounded_note"], shown["drift_text"], shown["canary_note"]
    assert "No paid calls yet" in cost_note
    assert health.empty and "No circuit breakers" in health_note and "local" in health_note
    assert "No grounded replies yet" in grounded_note
    assert "no check yet" in drift_text and "50 turns" in drift_text
    assert "LASTMILE_CANARY_SUITE" in canary_note


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_canary_history_and_drift_panel_read_their_rows(settings: Settings) -> None:
    from assistant.ops.drift import run_drift
    from assistant.ops.schedule import run_canary

    engine = open_engine(settings.resolved_database_url)
    cfg = settings.model_copy(update={"canary_suite": EXAMPLE, "drift_min_turns": 20,
                                      "drift_recent_hours": 12, "drift_baseline_days": 2})
    report = run_canary(engine, cfg)
    assert report["failed"] == 0 and report["passed"] == 4
    _store_turns(engine, 200, span=timedelta(days=2))
    assert run_drift(engine, cfg) is not None
    history = dashboard.canary_frame(engine)
    assert list(history[["passed", "failed"]].iloc[0]) == [4, 0] and history["pass_rate"][0] == 1.0
    psi = dashboard.drift_frame(engine)
    assert {"input_length", "latency_ms", "topic"} <= set(psi["signal"])
    with Assistant(cfg.model_copy(update={"index_turns": False}), model=ScriptedModel(["hi"])) as bot:
        shown = figures(bot)
    assert "**Drift: " in shown["drift_text"] and "| topic |" in shown["drift_text"]
    assert "4 passed, 0 failed" in shown["canary_note"]
    engine.dispose()
