"""Issue 13's done-when in a real browser: the per-diem scenario. A travel policy is
uploaded in the Documents tab; the scripted model answers the outside-EU question with
the wrong value (shown red, not supported, the right source sentence in the panel) and
then with the right one (green, supported). Also: an answer with no supported claim says
"not verified against your documents", and model text is escaped, never run. Everything
but the model is real (FastAPI + Gradio, SQLite, Chroma, MiniLM, the citation checker)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ui_support import BOT, SELECTED, send, shot

from assistant import Assistant, ScriptedModel, Settings
from memory.corpus import Corpus
from memory.db import open_engine
from memory.vectors import open_chroma
from ui.verdicts import NOT_VERIFIED

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect
expect.set_options(timeout=20_000)

POLICY = ("# Travel policy\n\n## Per diem\n\nThe daily per diem is 45 EUR within the EU and 60 EUR "
          "outside the EU.\n\n## Flights\n\nEconomy class is booked for flights under 6 hours. "
          "Business class is allowed for flights of 6 hours or more.\n")
PER_DIEM = "The daily per diem is 45 EUR within the EU and 60 EUR outside the EU."
QUESTION = "What is the per diem outside the EU?"


def _policy_id(messages: Sequence) -> str:
    """The number the prompt gave the policy's per-diem source."""
    import re

    found = re.findall(r"^\[(\d+)\] Travel policy", str(messages[0].content), re.MULTILINE)
    return found[0] if found else "1"


def _run(live_server, page, tmp_path: Path, answers: list[str]):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'ui.db'}",
                        index_turns=False, cache_mode="off", summarize_sessions=False,
                        extractive_answers="off", citation_policy="annotate")
    docs = Corpus(open_engine(settings.resolved_database_url), open_chroma(settings.chroma_path))
    queue = iter(answers)
    model = ScriptedModel(fn=lambda messages: next(queue).replace("[1]", f"[{_policy_id(messages)}]"))
    bot = Assistant(settings, model=model, documents=docs)
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    page.get_by_role("tab", name="Documents").click()
    policy = tmp_path / "upload" / "travel-policy.md"
    policy.parent.mkdir()
    policy.write_text(POLICY)
    page.locator("#lm-upload input[type=file]").set_input_files(str(policy))
    expect(page.locator("#lm-ingest-result")).to_contain_text("travel-policy.md")
    page.get_by_role("tab", name="Chat").click()
    return bot


def _check(page, answer_start: str, shown: str) -> None:  # type: ignore[no-untyped-def]
    reply = page.locator(BOT).last
    expect(reply.locator(".lm-provider")).to_have_text("scripted")
    claim = reply.locator(f".lm-claim.lm-v-{shown}")
    expect(claim).to_contain_text(answer_start)
    expect(reply.locator(f".lm-vbadge.lm-v-{shown}")).to_be_visible()
    panel = page.locator("#lm-citations details.lm-cite:has(summary:has-text('Travel policy'))")
    expect(panel).to_have_attribute("data-shown", shown)
    panel.locator("summary").click()
    expect(panel.locator("blockquote mark.lm-evidence")).to_contain_text(PER_DIEM)


def _colour(page, shown: str) -> str:  # type: ignore[no-untyped-def]
    return page.locator(BOT).last.locator(f".lm-vbadge.lm-v-{shown}").evaluate(
        "e => getComputedStyle(e).color")


def test_per_diem_wrong_value_is_red_and_right_value_green(live_server, page, tmp_path) -> None:
    _run(live_server, page, tmp_path, ["The per diem outside the EU is 45 EUR [1].",
                                       "The per diem outside the EU is 60 EUR [1]."])
    send(page, QUESTION)
    _check(page, "45 EUR", "not_supported")
    assert _colour(page, "not_supported") == "rgb(185, 28, 28)"  # red
    shot(page, "verdict-per-diem-wrong")
    send(page, QUESTION)
    expect(page.locator(BOT)).to_have_count(2)
    _check(page, "60 EUR", "supported")
    assert _colour(page, "supported") == "rgb(21, 128, 61)"  # green
    expect(page.locator(BOT).last.locator(".lm-unverified")).to_have_count(0)
    shot(page, "verdict-per-diem-right")


def test_per_diem_bare_value_is_judged_against_the_question(live_server, page, tmp_path) -> None:
    _run(live_server, page, tmp_path, ["45 EUR [1]", "60 EUR [1]"])
    send(page, QUESTION)
    _check(page, "45 EUR", "not_supported")
    send(page, QUESTION)
    expect(page.locator(BOT)).to_have_count(2)
    _check(page, "60 EUR", "supported")


def test_unverified_answer_says_so_and_model_html_is_shown_not_run(live_server, page,
                                                                   tmp_path) -> None:
    _run(live_server, page, tmp_path, [
        "Rental cars <img src=x onerror=\"document.title='pwned'\"> are limited to 80 EUR per day."])
    send(page, "What is the rental car policy?")
    reply = page.locator(BOT).last
    expect(reply.locator(".lm-unverified")).to_contain_text(NOT_VERIFIED)
    expect(reply).to_contain_text("80 EUR per day")
    assert page.title() != "pwned" and reply.locator("img").count() == 0
