"""The product's main flows in a real browser against the real server (FastAPI + Gradio,
SQLite, Chroma, MiniLM, the real citation checker and job worker); only the model is
scripted, and it reads its prompt the way a real one would. Covers: a grounded answer
and its sources panel, forgetting a fact so the next prompt no longer carries it,
approving a review item, and uploading / refusing / deleting documents. Screenshots go
to ``build/screenshots/`` as artefacts."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from assistant import Assistant, ScriptedModel, Settings
from guardrails.grounding import LABELS
from memory.corpus import Corpus
from memory.db import open_engine
from memory.vectors import open_chroma
from ui.documents_tab import ALLOWED_TYPES, check_upload

from ui_support import BOT, SELECTED, send, shot, until  # noqa: E402

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect
expect.set_options(timeout=20_000)  # the box is shared; the page may take a while


TRAM = ("# Tram 28\n\nTram 28 in Lisbon runs from Martim Moniz to Campo de Ourique. It uses "
        "vintage Remodelado cars built in the 1930s.")
FERRY = ("# Cacilhas ferry\n\nThe Cacilhas ferry in Lisbon crosses the Tagus river from Cais do "
         "Sodré to Cacilhas in about ten minutes.")


def rows(table: str) -> str:
    """The rendered body rows of a Gradio 6 dataframe (it draws a virtual table)."""
    return f"#{table} [role=row].virtual-row"


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def source_ids(messages: Sequence) -> dict[str, str]:
    """Which number the prompt gave each document title (e.g. {"Tram 28": "1"})."""
    return {title: sid for sid, title in
            re.findall(r"^\[(\d+)\] (.+?) \(", str(messages[0].content), re.MULTILINE)}


@pytest.fixture
def ui_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'ui.db'}",
                    index_turns=False, cache_mode="off", summarize_sessions=False)


@pytest.fixture
def corpus(ui_settings: Settings, tmp_path: Path) -> Corpus:
    """The Lisbon transport notes as a shared collection (real SQL + Chroma + MiniLM)."""
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "tram.md").write_text(TRAM)
    (kb / "ferry.md").write_text(FERRY)
    engine = open_engine(ui_settings.resolved_database_url)
    docs = Corpus(engine, open_chroma(ui_settings.chroma_path))
    assert docs.ingest([kb], collection="lisbon").count("added") == 2
    return docs


def test_grounded_answer_shows_sources_with_verdicts(live_server, page, ui_settings, corpus) -> None:
    def answer(messages: Sequence) -> str:
        ids = source_ids(messages)
        return (f"Tram 28 runs from Martim Moniz to Campo de Ourique [{ids['Tram 28']}]. "
                f"The Cacilhas ferry leaves from Belém and takes three hours [{ids['Cacilhas ferry']}].")

    model = ScriptedModel(fn=answer)
    bot = Assistant(ui_settings, model=model, documents=corpus)
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    send(page, "How do I ride tram 28 and the Cacilhas ferry in Lisbon?")
    reply = page.locator(BOT).last
    expect(reply.locator(".lm-provider")).to_have_text("scripted")
    expect(reply.locator(".lm-claim.lm-v-not_supported")).to_contain_text(
        "The Cacilhas ferry leaves from Belém")  # the wrong sentence, marked beside the text
    expect(reply).not_to_contain_text(LABELS["unsupported"].strip())
    ids = source_ids(model.requests[-1].messages)
    tram = page.locator(f"#lm-citations details.lm-cite:has(summary:has-text('[{ids['Tram 28']}]'))")
    ferry = page.locator(f"#lm-citations details.lm-cite:has(summary:has-text('[{ids['Cacilhas ferry']}]'))")
    expect(tram).to_have_attribute("data-verdict", "supported")
    expect(tram.locator("summary .lm-verdict")).to_contain_text("supported")
    expect(tram.locator("summary")).to_contain_text("Tram 28")
    expect(ferry).to_have_attribute("data-verdict", "unsupported")
    expect(ferry.locator("summary .lm-verdict")).to_have_text("✗ not supported")
    snippet = tram.locator("blockquote")
    expect(snippet).to_be_hidden()  # closed until the user opens the source
    tram.locator("summary").click()
    expect(snippet).to_be_visible()
    expect(snippet).to_contain_text("Martim Moniz")
    ferry.locator("summary").click()  # each sentence citing a source shows its own verdict
    expect(ferry.locator(".lm-cite-sentence[data-verdict=unsupported]")).to_contain_text(
        "The Cacilhas ferry leaves from Belém")
    stored = bot.history(bot.sessions()[0].session_id)[-1]
    assert {c["title"]: c["verdict"] for c in stored.context["citations"]} == {
        "Tram 28": "supported", "Cacilhas ferry": "unsupported"}
    shot(page, "flow-citations")


def test_forgotten_fact_leaves_the_memory_tab_and_the_next_prompt(live_server, page,
                                                                   ui_settings) -> None:
    model = ScriptedModel(fn=lambda messages: f"noted: {messages[-1].content}")
    bot = Assistant(ui_settings, model=model)
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    send(page, "I live in Lisbon")
    expect(page.locator(BOT).last).to_contain_text("noted: I live in Lisbon")
    bot.flush()  # the facts job runs on the background worker
    [fact] = until(lambda: bot.facts("default"))
    assert "Lisbon" in fact.text and fact.source_ids

    page.locator("#lm-new").click()  # a new chat: only memory can bring Lisbon back
    expect(page.locator(BOT)).to_have_count(0)
    send(page, "Any plans for the weekend?")
    expect(page.locator(BOT).last).to_contain_text("noted: Any plans")
    assert "Lisbon" in str(model.requests[-1].messages[0].content)  # recalled while known

    open_tab(page, "Memory")
    row = page.locator(rows("lm-facts"), has_text="Lisbon")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("valid")
    row.locator("[role=gridcell]", has_text=fact.text).click()
    expect(page.locator("#lm-fact-id input")).to_have_value(str(fact.id))
    expect(page.locator("#lm-fact-sources blockquote")).to_have_text("I live in Lisbon")
    shot(page, "flow-memory")
    page.locator("#lm-fact-forget").click()
    expect(page.locator(rows("lm-facts"), has_text="Lisbon")).to_have_count(0)
    assert bot.facts("default") == []

    open_tab(page, "Chat")
    page.locator("#lm-new").click()
    expect(page.locator(BOT)).to_have_count(0)
    asked = len(model.requests)
    send(page, "Any plans for the weekend?")
    expect(page.locator(BOT).last).to_contain_text("noted: Any plans")
    assert len(model.requests) == asked + 1
    assert "Lisbon" not in " ".join(str(m.content) for m in model.requests[-1].messages)


def test_reviewer_approves_a_low_confidence_answer(live_server, page, ui_settings, corpus) -> None:
    def wrong(messages: Sequence) -> str:
        return f"Tram 28 runs from Belém to Cascais [{source_ids(messages)['Tram 28']}]."

    bot = Assistant(ui_settings, model=ScriptedModel(fn=wrong), documents=corpus)
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    send(page, "Where does tram 28 run?")
    expect(page.locator(BOT).last.locator(".lm-badge")).to_have_text("pending review")
    [item] = bot.review.pending()
    assert item.kind == "answer" and item.confidence is not None
    assert item.confidence < ui_settings.review_threshold

    open_tab(page, "Review")
    row = page.locator(rows("lm-review-queue"), has_text="Tram 28 runs from Belém to Cascais")
    expect(row).to_have_count(1)
    row.locator("[role=gridcell]").nth(1).click()
    expect(page.locator(f"#lm-review-context .lm-review-item[data-id='{item.id}']")).to_contain_text(
        "Where does tram 28 run?")
    cited = page.locator("#lm-review-context .lm-cite[data-verdict=unsupported]")
    expect(cited.locator("summary")).to_contain_text("Tram 28")  # the evidence, for the reviewer
    shot(page, "flow-review")
    page.locator("#lm-review-approve").click()
    expect(page.locator(rows("lm-review-queue"), has_text="Tram 28")).to_have_count(0)
    assert bot.review.pending() == []
    [decision] = bot.review.decisions(item.id)
    assert (decision["decision"], decision["reviewer_id"]) == ("approve", "default")

    page.reload()
    expect(page.locator(BOT).last).to_contain_text("Tram 28 runs from Belém to Cascais")
    expect(page.locator(BOT).last.locator(".lm-provider")).to_have_text("scripted")
    expect(page.locator(BOT).last.locator(".lm-badge")).to_have_count(0)


def test_documents_upload_refuse_and_delete(live_server, page, ui_settings, corpus,
                                           tmp_path: Path) -> None:
    bot = Assistant(ui_settings, model=ScriptedModel(), documents=corpus)
    url, _ = live_server(bot)
    page.goto(url)
    expect(page.locator(SELECTED)).to_have_count(1)
    open_tab(page, "Documents")
    expect(page.locator(rows("lm-sources"), has_text="Tram 28")).to_contain_text("shared")

    notes = tmp_path / "upload" / "harbour.md"
    notes.parent.mkdir()
    notes.write_text("# Harbour notes\n\nThe harbour master opens the lock at dawn.")
    page.locator("#lm-upload input[type=file]").set_input_files(str(notes))
    expect(page.locator("#lm-ingest-result")).to_contain_text("harbour.md")
    mine = page.locator(rows("lm-sources"), has_text="Harbour notes")
    expect(mine).to_contain_text("yours")
    [source] = [s for s in corpus.sources("default") if s.title == "Harbour notes"]
    assert not source.shared and source.chunks >= 1

    bad = tmp_path / "upload" / "tool.exe"
    bad.write_bytes(b"MZ\x90\x00 not a document")
    page.locator("#lm-upload input[type=file]").set_input_files(str(bad))
    refusal = page.get_by_text("tool.exe")  # Gradio checks the type before uploading
    expect(refusal.first).to_be_visible()
    expect(refusal.first).to_contain_text(", ".join(ALLOWED_TYPES))  # the allowed types named
    assert not any("tool" in s.path for s in corpus.sources("default"))
    shot(page, "flow-documents")

    mine.locator("[role=gridcell]", has_text="Harbour notes").click()
    expect(page.locator("#lm-source-id input")).to_have_value(str(source.id))
    page.locator("#lm-source-delete").click()
    expect(page.locator(rows("lm-sources"), has_text="Harbour notes")).to_have_count(0)
    expect(page.locator(rows("lm-sources"), has_text="Tram 28")).to_have_count(1)
    assert sorted(s.title for s in corpus.sources("default")) == ["Cacilhas ferry", "Tram 28"]


def test_the_server_side_upload_check_names_type_and_size_limit(tmp_path: Path) -> None:
    """Gradio's type check runs in the browser; this one holds for any client."""
    big = tmp_path / "big.md"
    with big.open("wb") as out:
        out.truncate(200_000_000)  # sparse: 200 MB on paper, nothing on disk
    assert check_upload(big, 20_000_000) == (
        "big.md: 200.0 MB is over the 20 MB limit (LASTMILE_INGEST_MAX_FILE_MB)")
    tool = tmp_path / "tool.exe"
    tool.write_bytes(b"MZ")
    assert check_upload(tool, 20_000_000) == (
        f"tool.exe: unsupported type .exe; allowed: {', '.join(ALLOWED_TYPES)}")
    small = tmp_path / "notes.md"
    small.write_text("# Notes\n\nfine")
    assert check_upload(small, 20_000_000) is None


def test_uploads_are_kept_under_a_stable_per_user_path(tmp_path: Path) -> None:
    """Re-uploading a changed file of the same name updates that source, not a new one."""
    from ui.documents_tab import keep_upload, upload_folder

    first = tmp_path / "gradio" / "a1" / "notes.md"
    first.parent.mkdir(parents=True)
    first.write_text("# Notes\n\nversion one")
    second = tmp_path / "gradio" / "b2" / "notes.md"
    second.parent.mkdir(parents=True)
    second.write_text("# Notes\n\nversion two")
    kept1 = keep_upload(tmp_path / "data", "ann/../bob", first)
    kept2 = keep_upload(tmp_path / "data", "ann/../bob", second)
    assert kept1 == kept2 == upload_folder(tmp_path / "data", "ann/../bob") / "notes.md"
    assert kept1.parent.parent == tmp_path / "data" / "uploads"
    assert kept2.read_text().endswith("version two")
