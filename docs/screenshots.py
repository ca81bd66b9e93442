"""Regenerate the README's screenshots: ``make screenshots`` (or
``.venv/bin/python docs/screenshots.py [OUT_DIR]``).

Seeds a throwaway lastmile (SQLite + Chroma in a temp dir) with demo data through the
public API — a few chats, facts, a document, a review item and the ledger rows those
turns write — serves the real UI on a free loopback port and photographs each tab with
Playwright driving Debian's Chromium at 1280×800. The seeded chats are scripted (they
answer from the numbered sources their prompt shows, citing them); the server then runs
the real embedded model, and the chat screenshot is a question asked in the browser and
answered by it (a minute or so on 2 cores), so the README shows what `make run` gives.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedder ships with the package

from assistant import Assistant, ScriptedModel, Settings
from memory.corpus import Corpus
from memory.db import open_engine
from memory.vectors import open_chroma

__all__ = ["main", "seed", "take"]

OUT = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TABS = ("chat", "memory", "documents", "review", "dashboard", "settings")
#: Asked of the real embedded model for the chat screenshot (the guide answers it).
QUESTION = "Where does tram 28 run?"
REPLY_TIMEOUT_MS = 600_000  # the 135M model on a busy 2-core box
GUIDE = """# Lisbon transport guide

Tram 28 runs from Martim Moniz to Campo de Ourique through Graça, Alfama and Baixa.
It uses vintage Remodelado cars built in the 1930s, so expect queues in summer.

The Cacilhas ferry crosses the Tagus river from Cais do Sodré to Cacilhas in about
ten minutes. A Navegante card pays for trams, buses, the metro and the ferry.

The Santa Justa lift connects Baixa to Largo do Carmo and opened in 1902.
"""


def _sources(messages: Sequence[Any]) -> dict[str, str]:
    """{number: excerpt} of the numbered sources in the system prompt."""
    system = str(messages[0].content)
    return {n: text for n, text in re.findall(r"^\[(\d+)\] .+?\n(.*?)(?=^\[\d+\] |\Z)", system,
                                              re.MULTILINE | re.DOTALL)}


def _answer(messages: Sequence[Any]) -> str:
    question = str(messages[-1].content).lower()
    cite = next(iter(_sources(messages)), None)
    if "tram 28" in question and cite:
        return (f"Tram 28 runs from Martim Moniz to Campo de Ourique through Graça, Alfama and "
                f"Baixa [{cite}]. It uses vintage Remodelado cars built in the 1930s [{cite}]. "
                "Since you live in Lisbon, a Navegante card is the cheapest way to ride it.")
    if "ferry" in question and cite:
        return f"The Cacilhas ferry leaves from Belém and takes about 45 minutes [{cite}]."
    if "cat" in question:
        return "How about *Pastel*, after Lisbon's custard tarts? Or *Fado*, if she likes to sing."
    return "Noted — I'll keep that in mind."


def seed(root: Path) -> Assistant:
    """A lastmile in ``root`` with chats, facts, a document, a review item and ledger rows."""
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'demo.db'}",
                        index_turns=False, cache_mode="off")
    (root / "kb").mkdir(parents=True, exist_ok=True)
    (root / "kb" / "lisbon-transport.md").write_text(GUIDE)
    corpus = Corpus(open_engine(settings.resolved_database_url), open_chroma(settings.chroma_path))
    corpus.ingest([root / "kb"], collection="city-guides")
    user = settings.default_user
    bot = Assistant(settings, model=ScriptedModel(fn=_answer), documents=corpus)
    intro = bot.new_session(user, "About me").session_id
    bot.chat("Hi! My name is Ann, I live in Lisbon and I'm allergic to peanuts.", session_id=intro,
             user_id=user)
    cat = bot.new_session(user, "Naming the cat").session_id
    bot.chat("Suggest a name for my new cat.", session_id=cat, user_id=user)
    ferry = bot.new_session(user, "Crossing the river").session_id
    bot.chat("How long does the Cacilhas ferry take?", session_id=ferry, user_id=user)  # → review
    trams = bot.new_session(user, "Riding tram 28").session_id
    bot.chat("Where does tram 28 run, and how should I pay?", session_id=trams, user_id=user)
    bot.flush()  # facts are extracted by the background worker
    (root / "mine").mkdir(exist_ok=True)  # an upload of Ann's own, after the chats above
    (root / "mine" / "itinerary.md").write_text(
        "# My Lisbon itinerary\n\nDay 1: Alfama and the castle. Day 2: Belém and the Jerónimos "
        "monastery. Day 3: a ferry to Cacilhas for lunch by the river.\n")
    corpus.ingest([root / "mine"], collection="uploads", user_id=user)  # private to Ann
    _past_week(bot)
    return bot


def _past_week(bot: Assistant) -> None:
    """Ledger rows for a week of remote calls (two users, three purposes, a few
    timeouts), priced by the ledger's own table, so the cost plots have a history."""
    from datetime import timedelta

    from memory.ledger import CallRecord, nusd_to_usd

    label, now = "openai:gpt-4o-mini", datetime.now(UTC)
    price = bot.ledger.prices.price(label)  # type: ignore[union-attr]
    for day in range(6, 0, -1):
        for n in range(3 + day % 3):
            user = ("default", "ops-bot")[n % 2]
            purpose = ("chat", "chat", "facts", "reask")[n % 4]
            prompt, completion = 900 + 220 * n + 40 * day, 160 + 35 * n
            failed = (day + n) % 7 == 0
            cost = None if failed or price is None else nusd_to_usd(
                bot.ledger.prices.nusd(price, prompt, completion))  # type: ignore[union-attr]
            bot.ledger.record(CallRecord(  # type: ignore[union-attr]
                provider="openai", model="gpt-4o-mini", status="error" if failed else "ok",
                purpose=purpose, user_id=user, prompt_tokens=0 if failed else prompt,
                completion_tokens=0 if failed else completion, cost_usd=cost,
                error_kind="timeout" if failed else None, latency_ms=600.0 + 90 * n,
                started_at=now - timedelta(days=day, minutes=7 * n)))


def _serve(bot: Assistant) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    from ui.server import create_server

    server = uvicorn.Server(uvicorn.Config(create_server(bot), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the lastmile server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server, thread


def take(url: str, out: Path) -> list[Path]:
    """One full-page PNG per tab, each after what makes it worth looking at has loaded."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(30_000)

        def snap(name: str) -> None:
            page.wait_for_timeout(600)  # let transitions settle
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            saved.append(path)

        page.goto(url)
        expect(page.locator("#lm-sessions label.selected")).to_have_text("Riding tram 28")
        page.locator("#lm-new").click()
        expect(page.locator("#lm-chat [data-testid='bot']")).to_have_count(0)
        page.locator("#lm-input textarea").fill(QUESTION)
        page.keyboard.press("Enter")
        done = page.locator("#lm-chat [data-testid='bot'] .lm-provider")
        expect(done).to_have_count(1, timeout=REPLY_TIMEOUT_MS)  # the caption: the reply is whole
        expect(page.locator("#lm-citations details.lm-cite").first).to_be_visible()
        page.locator("#lm-citations summary").first.click()
        snap("chat")
        page.get_by_role("tab", name="Memory").click()
        fact = page.locator("#lm-facts [role=row].virtual-row", has_text="Lisbon")
        fact.locator("[role=gridcell]", has_text="Lisbon").click()
        expect(page.locator("#lm-fact-sources blockquote").first).to_be_visible()
        snap("memory")
        page.get_by_role("tab", name="Documents").click()
        expect(page.locator("#lm-sources [role=row].virtual-row").first).to_be_visible()
        snap("documents")
        page.get_by_role("tab", name="Review").click()
        item = page.locator("#lm-review-queue [role=row].virtual-row").first
        item.locator("[role=gridcell]").nth(1).click()
        expect(page.locator("#lm-review-context .lm-review-item")).to_be_visible()
        page.locator("#lm-review-context .lm-cite summary").first.click()
        snap("review")
        page.get_by_role("tab", name="Dashboard").click()
        expect(page.locator("#lm-plot-latency")).to_be_visible()
        expect(page.locator("#lm-plot-latency img, #lm-plot-latency canvas, #lm-plot-latency svg")
               .first).to_be_visible()
        snap("dashboard")
        page.get_by_role("tab", name="Settings").click()
        expect(page.locator("#lm-settings-status")).to_contain_text("local:")
        snap("settings")
        browser.close()
    return saved


def main(argv: Sequence[str] = ()) -> int:
    out = Path(argv[0]) if argv else OUT
    with tempfile.TemporaryDirectory(prefix="lastmile-shots-") as tmp:
        seeded = seed(Path(tmp))
        settings = seeded.settings
        seeded.close()
        bot = Assistant(settings)  # the configured chain: the real embedded model by default
        print(f"serving with {bot.model.label}")
        url, server, thread = _serve(bot)
        try:
            saved = take(url, out)
        finally:
            server.should_exit = True
            thread.join(10)
            bot.close()
    for path in saved:
        print(f"saved {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
