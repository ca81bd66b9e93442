"""Drift alarms against a real database (SQLite and PostgreSQL) and the real MiniLM
encoder: stored turns in a baseline window and a recent one; a shifted recent window
(longer inputs on a new topic, slower) raises an alert with its PSI values in the
audit log, a ``drift_reports`` row and the webhook; an unshifted one raises none."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy import select, update

from assistant import Settings
from assistant.ops import psi as P
from assistant.ops.drift import compare, load_window, run_drift, windows
from memory.db import open_engine
from memory.models import DriftReport, Message, utcnow
from memory.store import ConversationStore

FERRY = ["When does the first ferry to Cacilhas leave?", "How much is a ferry ticket?",
         "Is there a night ferry from Cais do Sodré?", "Can I bring my bike on the ferry?",
         "How long does the crossing to Barreiro take?", "Where do I buy ferry tickets?",
         "Does the ferry run on public holidays?", "Which pier does the Seixal ferry use?"]
TAX = ["I am self-employed in Portugal and invoiced clients in three countries last year; how "
       "do I declare foreign VAT on my annual income tax return and which forms apply?",
       "My employer withheld too much income tax from my salary because of a wrong dependant "
       "declaration; how do I reclaim the difference and how long does the refund take?",
       "What are the capital gains tax rules for selling shares held for more than a year by a "
       "non-habitual resident, and are dividends from abroad taxed at the flat rate?",
       "Can I deduct the rent of my home office and the electricity bills as business expenses "
       "under the simplified regime for freelancers, and what proof do I need to keep?"]


def _store(engine: Any, texts: list[str], *, start: Any, latency_ms: float, user: str) -> None:
    """One answered turn per text, the replies spread over the hour after ``start``."""
    store = ConversationStore(engine)
    ids = []
    for n, text in enumerate(texts):
        asked = store.add_message(user, f"s{n % 5}", "user", text, reply_state="pending")
        reply = store.add_message(user, f"s{n % 5}", "assistant", "Here is what I found.",
                                  latency_ms=latency_ms + (n % 7) * 10, reply_to=asked.id,
                                  context={"stages_ms": {"model": latency_ms}})
        ids.append((asked.id, reply.id, start + timedelta(seconds=30 * n)))
    with engine.begin() as conn:
        for asked, reply, at in ids:
            conn.execute(update(Message).where(Message.id.in_((asked, reply))).values(created_at=at))


@pytest.fixture
def drift_db(settings: Settings) -> Any:
    engine = open_engine(settings.resolved_database_url)
    start, split, _ = windows(utcnow(), settings.drift_recent_hours, settings.drift_baseline_days)
    _store(engine, FERRY * 15, start=start + timedelta(days=1), latency_ms=800, user="ann")
    yield engine, split
    engine.dispose()


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_shifted_window_raises_an_alert_with_psi_values(
        drift_db: Any, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    from memory.budget import Budget

    engine, split = drift_db
    shifted = (TAX * 30)[:60] + FERRY * 5  # mostly long questions on a topic the baseline never had
    _store(engine, shifted, start=split + timedelta(minutes=5), latency_ms=4000, user="bob")
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_port}/alerts"
    budget = Budget(engine, webhook=hook)
    try:
        with caplog.at_level(logging.INFO, logger="lastmile.audit"):
            check = run_drift(engine, settings, notify=budget.notify)
        budget.flush()
    finally:
        server.shutdown()
    assert check is not None and check.level == "alert"
    psi = check.shifted()
    assert psi["input_length"] >= P.ALERT and psi["topic"] >= P.ALERT and psi["latency_ms"] >= P.ALERT
    assert "refusal" not in psi and "language" not in psi  # what did not move stays quiet
    [event] = [json.loads(r.getMessage()) for r in caplog.records if "drift.alert" in r.getMessage()]
    assert event["psi"]["topic"] == psi["topic"] and event["recent_turns"] == len(shifted)
    with engine.connect() as conn:
        [row] = conn.execute(select(DriftReport.level, DriftReport.metrics)).all()
    assert row.level == "alert" and row.metrics["input_length"]["psi"] == psi["input_length"]
    assert [a["event"] for a in _Hook.received] == ["drift.alert"]
    assert _Hook.received[0]["psi"] == psi


def test_an_unshifted_window_raises_nothing(drift_db: Any, settings: Settings,
                                            caplog: pytest.LogCaptureFixture) -> None:
    engine, split = drift_db
    _store(engine, list(reversed(FERRY)) * 10, start=split + timedelta(minutes=5), latency_ms=800,
           user="cy")
    with caplog.at_level(logging.INFO, logger="lastmile.audit"):
        check = run_drift(engine, settings)
    assert check is not None and check.level == "ok", check.to_dict()
    assert all(s.psi is not None and s.psi < P.WARN for s in check.signals
               if s.name in ("input_length", "topic", "language", "latency_ms", "refusal"))
    assert not [r for r in caplog.records if "drift." in r.getMessage()]


def test_too_few_turns_is_no_check(settings: Settings) -> None:
    engine = open_engine(settings.resolved_database_url)
    try:
        assert run_drift(engine, settings) is None
        with engine.connect() as conn:
            assert conn.execute(select(DriftReport.id)).first() is None
    finally:
        engine.dispose()


def test_psi_reads_the_usual_thresholds() -> None:
    assert P.psi([50, 50], [50, 50]) == 0
    assert P.level(P.psi_rate([False] * 95 + [True] * 5, [False] * 70 + [True] * 30)) == "alert"
    assert P.level(P.psi_numeric(list(range(100)), list(range(100)))) == "ok"
    assert P.guess_language("Wo ist der Bahnhof, und wie komme ich dahin?") == "de"
    assert P.guess_language("What is the time of the next train?") == "en"


def test_window_pairs_each_reply_with_its_question(drift_db: Any) -> None:
    engine, split = drift_db
    base = load_window(engine, split - timedelta(days=30), split)
    assert len(base) == len(FERRY) * 15 and {s.text for s in base} == set(FERRY)
    check = compare(base[:60], base[60:])
    assert check.level == "ok"


def _sample(text: str, **kw: Any) -> Any:
    from assistant.ops.drift import Sample

    base = {"reply": "Here you go.", "latency_ms": 500.0, "groundedness": 1.0, "claims": 2,
            "unsupported": 0, "fallback": False}
    return Sample(text=text, **{**base, **kw})


def test_rates_shift_for_scope_refusals_fallbacks_and_unsupported_sentences() -> None:
    base = [_sample(q) for q in FERRY * 10]
    recent = ([_sample(q, reply="I'm sorry, but I can't help with that.", fallback=True, unsupported=2,
                       groundedness=0.0) for q in TAX * 10] + [_sample(q) for q in FERRY * 5])
    check = compare(base, recent, in_scope=lambda text: "ferry" in text.lower() or "crossing" in text)
    levels = {s.name: s.level for s in check.signals}
    for name in ("out_of_scope", "refusal", "fallback", "unsupported_sentences", "groundedness"):
        assert levels[name] == "alert", (name, check.to_dict()[name])
    same = compare(base, [_sample(q) for q in reversed(FERRY * 10)], in_scope=lambda text: True)
    assert same.level == "ok" and same.shifted() == {}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_drift_job_runs_on_the_workers_schedule(drift_db: Any, settings: Settings) -> None:
    from assistant import Assistant, ScriptedModel

    engine, split = drift_db
    _store(engine, (TAX * 30)[:60], start=split + timedelta(minutes=5), latency_ms=4000, user="bob")
    with Assistant(settings.model_copy(update={"index_turns": False}), model=ScriptedModel(["hi"])):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                level = conn.scalar(select(DriftReport.level))
            if level is not None:
                break
            time.sleep(0.5)
    assert level == "alert"
