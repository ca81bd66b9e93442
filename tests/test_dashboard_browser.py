"""The dashboard in a real browser (Chromium): a local-only chain shows each empty
panel's explanation, and the latency plot's turn axis reads 1, 2, … 12 in order (a
string axis would put 10 and 11 before 2)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ui_support import SELECTED, shot

from assistant import Assistant, ScriptedModel, Settings

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect
expect.set_options(timeout=20_000)


def test_empty_panels_explain_themselves_and_turns_sort_as_numbers(live_server, page,
                                                                   tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'd.db'}",
                        index_turns=False, cache_mode="off", providers="local")
    bot = Assistant(settings, model=ScriptedModel(fn=lambda messages: "ok"))
    for n in range(12):
        bot.chat(f"question {n}", session_id="warm", user_id="default")
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    page.get_by_role("tab", name="Dashboard").click()
    expect(page.locator("#lm-note-cost")).to_contain_text("No paid calls yet")
    expect(page.locator("#lm-note-health")).to_contain_text("No circuit breakers")
    expect(page.locator("#lm-note-grounded")).to_contain_text("No grounded replies yet")
    expect(page.locator("#lm-drift")).to_contain_text("no check yet")
    expect(page.locator("#lm-note-canary")).to_contain_text("LASTMILE_CANARY_SUITE")
    latency = page.locator("#lm-plot-latency")
    x_axis = latency.locator("[aria-roledescription=axis]").first
    # A linear (numeric) scale spanning the turns 1 to 12, not a band of strings.
    expect(x_axis).to_have_attribute("aria-label", re.compile(r"X-axis titled 'turn' for a linear scale "
                                                              r"with values from 0 to 1[23]"))
    labels = [t.strip() for t in x_axis.locator(".role-axis-label text").all_text_contents()]
    ticks = [int(t) for t in labels if t.isdigit()]
    assert ticks and ticks == sorted(ticks), labels  # numeric order along the axis
    shot(page, "dashboard-empty-states")


def test_a_thousand_turns_plot_by_time(live_server, page, tmp_path: Path) -> None:
    from datetime import timedelta

    from test_dashboard_scale import _store_turns

    from memory.db import open_engine

    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'k.db'}",
                        index_turns=False, cache_mode="off", providers="local")
    engine = open_engine(settings.resolved_database_url)
    _store_turns(engine, 1000, span=timedelta(days=3))
    engine.dispose()
    bot = Assistant(settings, model=ScriptedModel(fn=lambda messages: "ok"))
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    page.get_by_role("tab", name="Dashboard").click()
    expect(page.locator("#lm-note-latency")).to_contain_text("1000 turns")
    expect(page.locator("#lm-plot-latency")).to_be_hidden()
    x_axis = page.locator("#lm-plot-latency-time [aria-roledescription=axis]").first
    expect(x_axis).to_have_attribute("aria-label",
                                     re.compile(r"X-axis titled 'time \(UTC\)' for a time scale"))
    shot(page, "dashboard-1000-turns")
