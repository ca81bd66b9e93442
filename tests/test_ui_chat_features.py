"""Issue 16's chat in a real browser (Chromium) against the real server: Stop mid-reply,
a message queued during a reply, a file attached in the chat and a cited answer from
it, export of that chat (file contents checked), chat search scoped to its user,
switching regenerated versions, the memory notice with undo, and the reconnect notice.

One server for the module (the tests are independent: each signs in as its own user
through the trusted proxy header). Everything but the model is real: FastAPI + Gradio,
SQLite, Chroma, MiniLM, the citation checker, the background job worker. The scripted
model reads its prompt the way a real one would (the source number it cites).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ui_support import BOT, INPUT, SELECTED, LiveServer, send, shot, until

from assistant import Assistant, ScriptedModel, Settings
from assistant.reply import STOPPED
from memory.chats import attached_collection
from memory.corpus import Corpus
from memory.db import open_engine
from memory.vectors import open_chroma

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect
expect.set_options(timeout=20_000)  # the box is shared; the page may take a while

POLICY = ("# Travel policy\n\n## Per diem\n\nThe daily per diem is 45 EUR within the EU and 60 EUR "
          "outside the EU.\n")
QUESTION = "What is the per diem outside the EU?"
LONG = " ".join(f"w{i}" for i in range(80))  # ~10 s at the paced rate
LIMIT_MB = 1  # LASTMILE_INGEST_MAX_FILE_MB of the module's server (a too-big file stays small)


class Paced(ScriptedModel):
    """Streams "long …" questions slowly (a reply to stop or queue behind); the rest fast."""

    def request(self, request: Any) -> Iterator[Any]:
        self.delay_s = 0.12 if str(request.messages[-1].content).startswith("long") else 0.0
        yield from super().request(request)


def _answer(counter: Iterator[int]) -> Any:
    def answer(messages: Sequence[Any]) -> str:
        question = str(messages[-1].content)
        if question.startswith("long"):
            return LONG
        if question.startswith("version"):
            return f"Version answer {next(counter)}"
        if "per diem" in question:
            found = re.findall(r"^\[(\d+)\] Travel policy", str(messages[0].content), re.MULTILINE)
            if found:
                return f"The per diem outside the EU is 60 EUR [{found[0]}]."
            return "I have no document about that."
        return f"(scripted) you said: {question}"
    return answer


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Assistant, Paced]]:
    root = tmp_path_factory.mktemp("chat-ui")
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'ui.db'}",
                        index_turns=False, cache_mode="off", summarize_sessions=False,
                        extractive_answers="off", citation_policy="annotate", auth="header",
                        auth_trusted_proxies="127.0.0.1/32", ingest_max_file_mb=LIMIT_MB)
    docs = Corpus(open_engine(settings.resolved_database_url), open_chroma(settings.chroma_path))
    model = Paced(fn=_answer(itertools.count(1)))
    bot = Assistant(settings, model=model, documents=docs)
    server = LiveServer(bot)
    yield server.url, bot, model
    server.stop()
    bot.close()


def _open(app: Any, pages: Any, user: str) -> Any:
    url, _, _ = app
    page = pages.new(extra_http_headers={"X-Forwarded-User": user}, accept_downloads=True)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    return page


def _session(bot: Assistant, user: str) -> str:
    return bot.sessions.list(user)[0].session_id


def test_stop_mid_reply_keeps_the_partial_marked_stopped(app, pages) -> None:
    _, bot, _ = app
    page = _open(app, pages, "stan")
    send(page, "long story please")
    expect(page.locator(BOT).last).to_contain_text("w5")
    page.locator("#lm-stop").click()
    mark = page.locator(BOT).last.locator(".lm-incomplete.lm-status-stopped")
    expect(mark).to_contain_text("Stopped")
    expect(page.locator("#lm-stop")).to_be_hidden()
    shot(page, "chat-stopped")
    reply = bot.sessions.history(_session(bot, "stan"), user_id="stan")[-1]
    assert (reply.role, reply.status, reply.error) == ("assistant", "incomplete", STOPPED)
    assert reply.content.startswith("w0 w1") and LONG.split()[-1] not in reply.content
    expect(page.locator(BOT).last).to_contain_text(reply.content.split()[-1])  # all that was kept
    send(page, "and now?")  # the chat goes on; the stopped reply is not marked "no reply"
    expect(page.locator(BOT).last).to_contain_text("(scripted) you said: and now?")
    expect(page.locator(".lm-interrupted")).to_have_count(0)


def test_a_message_sent_during_a_reply_is_queued_then_answered(app, pages, tmp_path) -> None:
    _, bot, _ = app
    page = _open(app, pages, "quinn")
    send(page, "long answer first")
    expect(page.locator(BOT).last).to_contain_text("w3")
    huge = tmp_path / "huge-log.md"
    huge.write_text("x" * (LIMIT_MB * 1_000_000 + 1))  # kept back: its line waits with the message
    page.locator("#lm-input input[type=file]").set_input_files([str(huge)])
    send(page, "second, sent meanwhile")
    queued = page.locator("#lm-chat .lm-queued")
    expect(queued).to_have_count(1)
    shot(page, "chat-queued")
    expect(page.locator(INPUT)).to_have_value("")  # taken, not left in the box
    assert "second, sent meanwhile" not in [m.content for m in bot.sessions.history(
        _session(bot, "quinn"), user_id="quinn")]  # waits: stored once its turn starts
    expect(page.locator(BOT).last).to_contain_text("(scripted) you said: second, sent meanwhile",
                                                   timeout=60_000)
    expect(queued).to_have_count(0)
    expect(page.locator("#lm-chat .lm-attach-note")).to_contain_text("huge-log.md: 1.0 MB is over")
    history = bot.sessions.history(_session(bot, "quinn"), user_id="quinn")
    assert [(m.role, m.content[:12]) for m in history] == [
        ("user", "long answer "), ("assistant", "w0 w1 w2 w3 "), ("user", "second, sent"),
        ("assistant", "(scripted) y")]
    assert history[1].status == "ok" and history[1].content == LONG  # the first was not cut


def _attach(page: Any, *paths: Path) -> None:
    page.locator("#lm-input input[type=file]").set_input_files([str(p) for p in paths])
    expect(page.locator("#lm-input [aria-label='File thumbnail']")).to_have_count(len(paths))


def test_attach_in_chat_then_a_cited_answer_and_its_export(app, pages, tmp_path) -> None:
    _, bot, _ = app
    page = _open(app, pages, "ada")
    files = tmp_path / "files"
    files.mkdir()
    (files / "table.csv").write_text("a,b\n1,2\n")
    (files / "blank.md").write_text("")
    from pypdf import PdfWriter

    locked = PdfWriter()
    locked.add_blank_page(612, 792)
    locked.encrypt("s3cret", algorithm="RC4-128")
    with open(files / "locked.pdf", "wb") as fh:
        locked.write(fh)
    policy = files / "travel-policy.md"
    policy.write_text(POLICY)

    _attach(page, files / "table.csv", files / "blank.md", files / "locked.pdf")
    send(page, "hello with files")  # refused files: said in the chat, the message still goes
    expect(page.locator(BOT).last).to_contain_text("(scripted) you said: hello with files")
    notes = page.locator("#lm-chat .lm-attach-note")
    expect(notes.filter(has_text="table.csv")).to_contain_text("unsupported type .csv")
    expect(notes.filter(has_text="blank.md")).to_contain_text("empty")
    expect(notes.filter(has_text="locked.pdf")).to_contain_text("encrypted PDF (needs a password)")
    expect(notes.filter(has_text="locked.pdf")).not_to_contain_text(str(tmp_path))  # no server path

    _attach(page, policy)
    send(page, QUESTION)
    reply = page.locator(BOT).last
    expect(reply).to_contain_text("60 EUR")
    expect(notes.filter(has_text="Attached")).to_contain_text("travel-policy.md")
    panel = page.locator("#lm-citations details.lm-cite:has(summary:has-text('Travel policy'))")
    expect(panel).to_have_attribute("data-shown", "supported")
    shot(page, "chat-attached")
    session = _session(bot, "ada")
    assert {s.collection for s in bot.documents.sources("ada")} == {attached_collection(session)}
    # Scoped to that chat: another chat of the same user does not draw on the file.
    docs: Any = bot.documents
    assert docs.search("ada", QUESTION, chat=session)
    assert docs.search("ada", QUESTION, chat="another-chat") == []
    page.locator("#lm-scope-box").click()
    expect(page.locator("#lm-scope")).to_contain_text("files attached in this chat")

    with page.expect_download() as got:
        page.locator("#lm-export-json").click()
    data = json.loads(Path(got.value.path()).read_text())
    assert data["session_id"] == session
    answer = data["messages"][-1]
    assert answer["content"].startswith("The per diem outside the EU is 60 EUR")
    assert [(c["title"], c["verdict"]) for c in answer["citations"]] == [("Travel policy", "supported")]
    assert any(c["text"].startswith("The per diem") for c in answer["checks"])
    with page.expect_download() as got:
        page.locator("#lm-export-md").click()
    assert got.value.suggested_filename == f"lastmile-chat-{session}.md"
    markdown = Path(got.value.path()).read_text()
    assert "## You\n\nWhat is the per diem outside the EU?" in markdown
    assert "Sources:\n- [" in markdown and "] Travel policy (supported)" in markdown
    kept = bot.documents.sources("ada")[0].path

    page.locator("#lm-delete-box").click()  # the chat's files go with it
    page.locator("#lm-delete").click()
    # sources first, then the chat's folder: wait for both (the handler may be between them)
    until(lambda: bot.documents.sources("ada") == [] and not Path(kept).exists())


def test_a_too_big_attachment_is_said_in_the_chat_and_the_message_goes_without_it(
        app, pages, tmp_path) -> None:
    _, bot, _ = app
    page = _open(app, pages, "bea")
    big, small = tmp_path / "big-report.md", tmp_path / "notes.md"
    big.write_text("# Big\n\n" + "lorem ipsum " * 150_000)  # 1.8 MB: over the 1 MB limit
    small.write_text("# Notes\n\nThe badge office opens at nine.\n")
    page.locator("#lm-input input[type=file]").set_input_files([str(big), str(small)])
    expect(page.locator("#lm-input [aria-label='File thumbnail']")).to_have_count(1)  # the small one
    send(page, "here are my files")
    expect(page.locator(BOT).last).to_contain_text("(scripted) you said: here are my files")
    notes = page.locator("#lm-chat .lm-attach-note")
    expect(notes.filter(has_text="big-report.md")).to_contain_text(f"over the {LIMIT_MB} MB limit")
    expect(notes.filter(has_text="Attached to this chat")).to_contain_text("notes.md")
    expect(page.locator(".toast-body.error")).to_have_count(0)  # said in the chat, not a toast
    shot(page, "chat-attach-too-big")
    session = _session(bot, "bea")
    said = [m.content for m in bot.sessions.history(session, user_id="bea") if m.role == "user"]
    assert said == ["here are my files"]  # the note is shown, never stored
    assert [Path(s.path).name for s in bot.documents.sources("bea")] == ["notes.md"]
    assert not list(Path(bot.settings.data_dir).rglob("big-report.md"))  # nothing of it kept
    page.reload()  # a refusal belongs to the message it came with, not to the next one
    expect(page.locator(SELECTED)).to_have_count(1)
    send(page, "and another")
    expect(page.locator(BOT).last).to_contain_text("(scripted) you said: and another")
    expect(page.locator("#lm-chat .lm-attach-note")).to_have_count(0)
    page.locator("#lm-input input[type=file]").set_input_files([str(big)])  # alone, no text
    page.locator("#lm-send").click()
    expect(page.locator(".toast-body.warning")).to_contain_text(f"over the {LIMIT_MB} MB limit")
    assert len(bot.sessions.history(session, user_id="bea")) == 4  # nothing was sent


def test_a_too_big_file_dropped_on_the_box_is_kept_back_the_same_way(app, pages) -> None:
    _, bot, _ = app
    page = _open(app, pages, "dora")
    dropped = page.evaluate_handle("""(limit) => {
        const dt = new DataTransfer();
        dt.items.add(new File(["x".repeat(limit + 1)], "huge-scan.md", {type: "text/markdown"}));
        dt.items.add(new File(["# Menu\\n\\nSoup on Mondays.\\n"], "menu.md", {type: "text/markdown"}));
        return dt;
    }""", LIMIT_MB * 1_000_000)
    page.dispatch_event("#lm-input textarea", "drop", {"dataTransfer": dropped})
    expect(page.locator("#lm-input [aria-label='File thumbnail']")).to_have_count(1)
    send(page, "dropped two files")
    expect(page.locator(BOT).last).to_contain_text("(scripted) you said: dropped two files")
    notes = page.locator("#lm-chat .lm-attach-note")
    expect(notes.filter(has_text="huge-scan.md")).to_contain_text("over the 1 MB limit")
    expect(notes.filter(has_text="Attached to this chat")).to_contain_text("menu.md")
    expect(page.locator(".toast-body.error")).to_have_count(0)
    assert [Path(s.path).name for s in bot.documents.sources("dora")] == ["menu.md"]


def test_a_too_big_document_upload_names_the_limit_and_the_rest_is_ingested(
        app, pages, tmp_path) -> None:
    _, bot, _ = app
    page = _open(app, pages, "uma")
    page.get_by_role("tab", name="Documents").click()
    big, small, later = (tmp_path / n for n in ("big-handbook.md", "faq.md", "later.md"))
    big.write_text("# Handbook\n\n" + "lorem ipsum " * 150_000)  # 1.8 MB: over the 1 MB limit
    small.write_text("# FAQ\n\nThe canteen opens at noon.\n")
    later.write_text("# Later\n\nThe library closes at six.\n")
    page.locator("#lm-upload input[type=file]").set_input_files([str(big), str(small)])
    expect(page.locator("#lm-upload-too-big")).to_contain_text(
        f"big-handbook.md: 1.8 MB is over the {LIMIT_MB} MB limit (LASTMILE_INGEST_MAX_FILE_MB): not added")
    expect(page.locator("#lm-ingest-result")).to_contain_text("✓ faq.md")
    expect(page.locator(".toast-body.error")).to_have_count(0)  # not Gradio's "exceed … 976.6 Kb"
    shot(page, "documents-too-big")
    assert [Path(s.path).name for s in bot.documents.sources("uma")] == ["faq.md"]
    assert not list(Path(bot.settings.data_dir).rglob("big-handbook.md"))
    page.locator("#lm-upload input[type=file]").set_input_files([str(later)])  # the next pick
    expect(page.locator("#lm-ingest-result")).to_contain_text("✓ later.md")
    expect(page.locator("#lm-upload-too-big")).not_to_contain_text("big-handbook.md")


def test_search_finds_only_the_users_own_chats(app, pages) -> None:
    _, bot, _ = app
    for user, text in (("sam", "zebra crossing notes"), ("tom", "my zebra plan"),
                       ("sam", "grocery list")):
        bot.chat(text, session_id=bot.sessions.new(user).session_id, user_id=user)
    page = _open(app, pages, "sam")
    search = page.locator("#lm-search input, #lm-search textarea").first
    search.fill("ZEBRA")
    labels = page.locator("#lm-sessions label")
    expect(labels).to_have_count(1)
    expect(labels.first).to_contain_text("zebra crossing notes")
    search.fill("you said: grocery")  # content, not just titles
    expect(labels).to_have_count(1)
    expect(labels.first).to_contain_text("grocery list")
    labels.first.click()
    expect(page.locator(BOT).last).to_contain_text("you said: grocery list")
    for nasty in ("%", "_", "' OR 1=1 --", "\\", "x" * 5000, "🦓<b>zebra</b>"):
        search.fill(nasty)
        expect(labels).to_have_count(0)
    expect(page.locator(".toast-body.error")).to_have_count(0)
    search.fill("")
    expect(labels).to_have_count(2)


def test_regenerated_versions_are_kept_and_switchable(app, pages) -> None:
    _, bot, model = app
    page = _open(app, pages, "vic")
    send(page, "version please")
    expect(page.locator(BOT).last).to_contain_text("Version answer")

    def replies() -> list[Any]:
        return [m for m in bot.sessions.history(_session(bot, "vic"), user_id="vic")
                if m.role == "assistant"]
    for count in (2, 3):
        page.locator("#lm-chat button[aria-label='Retry']").last.click()
        until(lambda n=count: len(replies()) == n and replies()[-1].status == "ok")
        expect(page.locator(BOT).last).to_contain_text(replies()[-1].content)
    label = page.locator("#lm-version-label")
    expect(label).to_have_text("3 / 3")
    seeds = [r.seed for r in model.requests[-3:]]
    assert seeds[0] is None and None not in seeds[1:] and seeds[1] != seeds[2]
    texts = [m.content for m in replies()]
    assert len(set(texts)) == 3
    page.locator("#lm-version-prev").click()
    expect(label).to_have_text("2 / 3")
    expect(page.locator(BOT).last).to_contain_text(texts[1])
    page.locator("#lm-version-prev").click()
    expect(label).to_have_text("1 / 3")
    expect(page.locator(BOT).last).to_contain_text(texts[0])
    expect(page.locator(BOT)).to_have_count(1)
    page.locator("#lm-version-next").click()
    expect(label).to_have_text("2 / 3")
    statuses = [m.status for m in bot.sessions.history(_session(bot, "vic"), user_id="vic")]
    assert statuses == ["ok", "superseded", "ok", "superseded"]
    shot(page, "chat-versions")
    page.reload()  # the choice is stored, not page state
    expect(page.locator(BOT).last).to_contain_text(texts[1])
    expect(label).to_have_text("2 / 3")


def test_memory_notice_links_to_the_fact_and_undoes_it(app, pages) -> None:
    _, bot, _ = app
    page = _open(app, pages, "mia")
    send(page, "I live in Lisbon")
    expect(page.locator(BOT).last).to_contain_text("you said: I live in Lisbon")
    notice = page.locator("#lm-memory-notice")
    expect(notice).to_be_visible(timeout=30_000)
    expect(notice.locator(".lm-mem-change[data-op=learned]")).to_contain_text("Lisbon")
    [fact] = bot.facts.list("mia")
    shot(page, "chat-memory-notice")
    page.locator("#lm-memory-open").click()
    expect(page.locator("#lm-tab-memory")).to_be_visible()
    expect(page.locator("#lm-facts tr.lm-linked")).to_contain_text(fact.text)  # that fact's row
    expect(page.locator("#lm-fact-id input, #lm-fact-id textarea")).to_have_value(str(fact.id))
    page.get_by_role("tab", name="Chat").click()
    page.locator("#lm-memory-undo").click()
    expect(notice).to_be_hidden()
    until(lambda: bot.facts.list("mia") == [])
    assert [f.status for f in bot.facts.list("mia", include_history=True)] == ["forgotten"]


def test_a_lost_server_is_announced_and_the_draft_survives_the_reload(app, pages) -> None:
    page = _open(app, pages, "rey")
    page.locator(INPUT).fill("a draft I have not sent")
    page.route("**/healthz", lambda route: route.abort())  # the server is gone, to this page
    expect(page.locator("#lm-reconnect")).to_contain_text("reconnecting", timeout=20_000)
    page.unroute("**/healthz")
    with page.expect_navigation(timeout=20_000):
        pass  # back: the page reloads by itself
    expect(page.locator(SELECTED)).to_have_count(1)
    expect(page.locator(INPUT)).to_have_value("a draft I have not sent")
