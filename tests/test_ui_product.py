"""The product UI in a real browser against the production server: feedback, regenerate,
delete, sign-in, roles per tab and the admin dashboard. Screenshots go to
``build/screenshots/`` as artefacts."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from assistant import Assistant, ScriptedModel, Settings  # noqa: E402
from memory.accounts import Accounts  # noqa: E402

from ui_support import BOT, SELECTED, send, shot, until  # noqa: E402

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect
expect.set_options(timeout=20_000)  # the box is shared; the page may take a while

TABS = ["Chat", "Memory", "Documents", "Review", "Dashboard", "Settings"]


@pytest.fixture
def ui_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'ui.db'}",
                    index_turns=False, cache_mode="off")


def numbered() -> ScriptedModel:
    counter = itertools.count(1)
    return ScriptedModel(fn=lambda messages: f"answer {next(counter)} to {messages[-1].content}")


def visible_tabs(page) -> list[str]:
    expect(page.locator("button[role=tab]").first).to_be_visible()
    return [t.inner_text().strip() for t in page.locator("button[role=tab]").all() if t.is_visible()]


def test_like_regenerate_and_delete(live_server, page, ui_settings) -> None:
    bot = Assistant(ui_settings, model=numbered())
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    send(page, "hello")
    expect(page.locator(BOT).last.locator(".lm-provider")).to_have_text("scripted")
    expect(page.locator(BOT).last).to_contain_text("answer 1 to hello")
    [session] = bot.sessions()
    first = bot.history(session.session_id)[-1]

    page.locator("#lm-chat button[aria-label='Like']").last.click()
    until(lambda: bot.store.feedback("default", session.session_id) == {first.id: 1})

    page.locator("#lm-chat button[aria-label='Retry']").last.click()
    expect(page.locator(BOT).last).to_contain_text("answer 2 to hello")
    expect(page.locator(BOT)).to_have_count(1)  # the old reply is superseded, not shown
    assert [(m.content, m.status) for m in bot.history(session.session_id)][1:] == [
        ("answer 1 to hello", "superseded"), ("answer 2 to hello", "ok")]
    shot(page, "chat")

    page.locator("#lm-delete-box").click()
    page.locator("#lm-delete").click()
    until(lambda: session.session_id not in {s.session_id for s in bot.sessions()})
    expect(page.locator(BOT)).to_have_count(0)


def test_roles_decide_which_tabs_show(live_server, pages, ui_settings) -> None:
    settings = ui_settings.model_copy(update={"auth": "header",
                                              "auth_trusted_proxies": "127.0.0.1/32"})
    bot = Assistant(settings, model=numbered())
    accounts = Accounts(bot.store.engine)
    for name, role in (("ann", "user"), ("rita", "reviewer"), ("ada", "admin")):
        accounts.upsert(name, role=role)
    url, _ = live_server(bot)
    expected = {"ann": TABS[:3], "rita": TABS[:4], "ada": TABS, "newcomer": TABS[:3]}
    for name, tabs in expected.items():
        page = pages.new(extra_http_headers={"X-Forwarded-User": name})
        page.goto(url)
        expect(page.locator(SELECTED)).to_have_count(1)
        expect(page.locator("#lm-header .lm-user")).to_have_text(name)
        assert visible_tabs(page) == tabs, name
    assert accounts.get("newcomer").role == "user"  # a proxy-vouched user is provisioned


def test_password_sign_in_chats_as_that_user(live_server, page, ui_settings) -> None:
    settings = ui_settings.model_copy(update={"auth": "password"})
    bot = Assistant(settings, model=numbered())
    Accounts(bot.store.engine).upsert("ann", password="correct horse", role="user")
    url, _ = live_server(bot)
    page.goto(url)
    page.get_by_label("username").fill("ann")
    page.get_by_label("password").fill("wrong horse!")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Incorrect", exact=False)).to_be_visible()
    page.get_by_label("username").fill("ann")
    page.get_by_label("password").fill("correct horse")
    page.get_by_role("button", name="Login").click()
    expect(page.locator(SELECTED)).to_have_count(1)
    send(page, "it is me")
    expect(page.locator(BOT).last).to_contain_text("answer 1 to it is me")
    assert [m.content for s in bot.sessions("ann") for m in bot.history(s.session_id, "ann")] == [
        "it is me", "answer 1 to it is me"]
    assert bot.sessions("default") == []
    assert visible_tabs(page) == TABS[:3]


def test_dashboard_shows_figures_and_throws_the_kill_switch(live_server, page, ui_settings) -> None:
    from assistant.control import ControlFlags

    bot = Assistant(ui_settings, model=numbered())
    for text in ("one", "two", "three"):
        bot.chat(text, session_id="warm", user_id="default")
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    page.get_by_role("tab", name="Dashboard").click()
    expect(page.locator("#lm-stats")).to_contain_text("turns")
    expect(page.locator("#lm-stats .lm-stat b").first).to_have_text("3")
    expect(page.locator("#lm-plot-latency")).to_be_visible()
    page.locator("#lm-kill input").check()
    until(lambda: ControlFlags(bot.store.engine).status()["kill_switch"])
    shot(page, "dashboard")
    page.locator("#lm-kill input").uncheck()
    until(lambda: not ControlFlags(bot.store.engine).status()["kill_switch"])
    from memory.budget import Budget

    page.locator("#lm-cap-user input").fill("2.5")
    expect(page.locator("#lm-cap-user input")).to_have_value("2.5")
    page.locator("#lm-cap-apply").click()
    until(lambda: Budget(bot.store.engine).caps_usd() == {"user": 2.5, "global": None})
    page.locator("#lm-cap-reset").click()
    until(lambda: Budget(bot.store.engine).caps_usd() == {"user": None, "global": None})
