"""The Gradio UI in a real browser against the real app (scripted model, SQLite store).

Each test launches the app in-process on a free loopback port and drives it with
Playwright's Chromium. Set ``LASTMILE_TEST_CHROMIUM`` to a browser binary if neither
``chromium`` on PATH nor Playwright's own download is available.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from assistant import Assistant, ScriptedModel, ScriptedReply, Settings  # noqa: E402

from ui_support import BOT, INPUT, SELECTED, send  # noqa: E402

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

USER = "#lm-chat [data-testid='user']"


class SlowModel(ScriptedModel):
    """The scripted model with a pause per chunk, so streaming is observable."""

    def request(self, request):
        for chunk in super().request(request):
            time.sleep(0.12)
            yield chunk


def echo(messages) -> str:
    return f"echo: {messages[-1].content}"


@pytest.fixture
def ui_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'ui.db'}",
                    index_turns=False)


@pytest.fixture
def serve(live_server) -> Callable[..., tuple[str, Callable[[], None]]]:
    """Start the real server (FastAPI + mounted Gradio) for a bot; returns (url, stop)."""

    def start(bot: Assistant, **kwargs) -> tuple[str, Callable[[], None]]:
        url, stop = live_server(bot, **kwargs)
        return url + "/", stop

    return start


def open_chat(page, url: str) -> None:
    """Load the page and wait until a session is open (the selected list entry)."""
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)


def test_streamed_reply_shows_provider_and_is_stored(serve, pages, ui_settings) -> None:
    words = "one two three four five six seven eight nine ten"
    bot = Assistant(ui_settings, model=SlowModel(fn=lambda _: words, model="test-model"))
    url, _ = serve(bot)
    page = pages.new(permissions=["clipboard-read", "clipboard-write"])
    open_chat(page, url)
    send(page, "hello there")
    expect(page.locator(USER).last).to_have_text("hello there")
    expect(page.locator(INPUT)).to_have_value("")
    # Streaming: part of the reply is on screen before the rest (and before the caption).
    page.wait_for_function(
        """() => { const m = [...document.querySelectorAll("#lm-chat [data-testid='bot']")].pop();
                   return m && m.innerText.includes('one') && !m.innerText.includes('ten')
                          && !m.querySelector('.lm-provider'); }""", timeout=15_000)
    reply = page.locator(BOT).last
    expect(reply.locator(".lm-provider")).to_have_text("scripted:test-model")
    expect(reply).to_contain_text(words)
    expect(reply.locator(".lm-incomplete")).to_have_count(0)
    expect(page.locator(SELECTED)).to_have_text("hello there")  # titled by the first message
    # Copying a reply copies the reply, not the caption markup.
    reply.hover()
    page.locator("#lm-chat button[aria-label='Copy message']").last.click()
    assert page.evaluate("""async (want) => {  // the clipboard write is asynchronous
        for (let i = 0; i < 50 && (await navigator.clipboard.readText()) !== want; i++)
            await new Promise((done) => setTimeout(done, 100));
        return navigator.clipboard.readText(); }""", words) == words
    history = bot.history(bot.sessions()[0].session_id)
    assert [(m.role, m.content) for m in history] == [("user", "hello there"),
                                                     ("assistant", words)]
    assert history[1].provider == "scripted:test-model" and history[1].status == "ok"


def test_empty_message_is_rejected_kindly_and_not_stored(serve, page, ui_settings) -> None:
    model = ScriptedModel(fn=echo)
    bot = Assistant(ui_settings, model=model)
    url, _ = serve(bot, notice="The model is missing: run `make setup`.")
    open_chat(page, url)
    expect(page.locator("#lm-notice")).to_contain_text("The model is missing: run make setup")
    page.locator(INPUT).fill("   ")
    page.locator("#lm-send").click()
    expect(page.get_by_text("Your message is empty")).to_be_visible()
    expect(page.locator(USER)).to_have_count(0)
    assert model.requests == []
    [session] = bot.sessions()
    assert bot.history(session.session_id) == []
    send(page, "now for real")  # the app still works after a rejection
    expect(page.locator(BOT).last.locator(".lm-provider")).to_have_text("scripted")
    assert len(bot.history(session.session_id)) == 2


def test_new_rename_and_switch_sessions(serve, page, ui_settings) -> None:
    bot = Assistant(ui_settings, model=ScriptedModel(fn=echo))
    url, _ = serve(bot)
    open_chat(page, url)
    sessions = page.locator("#lm-sessions label")
    send(page, "alpha question")
    expect(page.locator(BOT).last).to_contain_text("echo: alpha question")
    # The first message titles the chat once the reply is done; wait for the sidebar
    # to say so before leaving (a late title update would land on the new chat's box).
    expect(page.locator(SELECTED)).to_have_text("alpha question")
    page.locator("#lm-new").click()
    expect(sessions).to_have_count(2)
    expect(page.locator(USER)).to_have_count(0)
    title = page.locator("#lm-title input")
    expect(title).to_have_value("New chat")  # mounted with the new chat's title first
    title.fill("Project Beta")
    expect(title).to_have_value("Project Beta")
    page.locator("#lm-rename").click()
    expect(page.locator(SELECTED)).to_have_text("Project Beta")
    send(page, "beta question")
    expect(page.locator(BOT).last).to_contain_text("echo: beta question")
    sessions.filter(has_text="alpha question").click()
    expect(page.locator(USER)).to_have_text(["alpha question"])
    expect(page.locator(BOT)).to_have_count(1)
    expect(page.locator(BOT).last).to_contain_text("echo: alpha question")
    expect(page.locator("#lm-title input")).to_have_value("alpha question")
    sessions.filter(has_text="Project Beta").click()
    expect(page.locator(USER)).to_have_text(["beta question"])
    expect(page.locator(BOT).last).to_contain_text("echo: beta question")
    assert [s.title for s in bot.sessions()] == ["Project Beta", "alpha question"]


def test_history_survives_a_restart(serve, pages, ui_settings) -> None:
    first = Assistant(ui_settings, model=ScriptedModel(fn=echo))
    url, stop = serve(first)
    page = pages.new()
    open_chat(page, url)
    send(page, "remember me")
    expect(page.locator(BOT).last.locator(".lm-provider")).to_be_visible()
    page.close()
    stop()
    first.close()
    second = Assistant(ui_settings, model=ScriptedModel(fn=echo))
    url, _ = serve(second)
    page = pages.new()
    open_chat(page, url)
    expect(page.locator(SELECTED)).to_have_text("remember me")
    expect(page.locator(USER)).to_have_text(["remember me"])
    expect(page.locator(BOT).last).to_contain_text("echo: remember me")
    expect(page.locator(BOT).last.locator(".lm-provider")).to_have_text("scripted")
    assert len(second.sessions()) == 1  # reopened, not a fresh empty chat


def test_reply_failing_mid_stream_shows_partial_text_and_marker(serve, page, ui_settings) -> None:
    model = ScriptedModel().enqueue(ScriptedReply("partial answer here", fail_after=2))
    bot = Assistant(ui_settings, model=model)
    url, _ = serve(bot)
    open_chat(page, url)
    send(page, "tell me something")
    reply = page.locator(BOT).last
    expect(reply.locator(".lm-incomplete")).to_contain_text("Incomplete · The reply was cut off")
    expect(reply).to_contain_text("partial answer")
    expect(reply).not_to_contain_text("here")
    [session] = bot.sessions()
    stored = bot.history(session.session_id)[-1]
    assert (stored.role, stored.status, stored.content.strip()) == ("assistant", "incomplete",
                                                                    "partial answer")
    page.reload()  # the marker comes from the store, not from the live turn
    expect(page.locator(BOT).last.locator(".lm-incomplete")).to_contain_text("Incomplete")
    expect(page.locator(BOT).last).to_contain_text("partial answer")
