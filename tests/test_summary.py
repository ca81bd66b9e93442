"""The rolling session summary: incremental folds, the extractive fallback, isolation.

Real SQL on SQLite and PostgreSQL, the real job queue and worker, ``ScriptedModel`` as
the summary model (and, in one slow test, the real local model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest
from langchain_core.messages import BaseMessage
from sqlalchemy import text

from assistant import Assistant, ScriptedModel, Settings
from assistant.errors import ProviderUnavailable
from assistant.extract import extract
from assistant.providers.base import approx_token_count
from memory.db import open_engine
from memory.extractive import LATEST, extractive_summary
from memory.store import ConversationStore
from memory.summary import HEADER, Summariser, looks_like_junk, render_summary_block
from memory.summary_store import SummaryStore

MARK = re.compile(r"turn-(\d+)-mark")


def summarising(messages: Sequence[BaseMessage]) -> bool:
    return "running summary" in str(messages[0].content)


def faithful(messages: Sequence[BaseMessage]) -> str:
    """A well-behaved summary model: the previous summary plus the new turns' markers."""
    if not summarising(messages):
        return "noted"
    source = str(messages[-1].content)
    previous = source.split("Previous summary: ", 1)[1].split("\n\nNew turns:", 1)[0]
    previous = "" if previous == "(none yet)" else previous.split(" Earlier request:")[0]
    new = source.split("New turns:\n", 1)[1]
    marks = " ".join(f"turn-{n}-mark" for n in MARK.findall(new))
    return json.dumps({"summary": f"{previous} User covered {marks} in Porto.".strip()})


def cfg(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"index_turns": False, "facts_enabled": False,
                                       "summary_model": "chat", "max_reply_tokens": 30, **update})


def test_summary_folds_incrementally_and_reaches_the_prompt(settings: Settings) -> None:
    model = ScriptedModel(fn=faithful, context_window=180)
    with Assistant(cfg(settings, context_summary_share=0.3), model=model) as bot:
        for i in range(24):
            reply = bot.chat(f"turn-{i}-mark: I keep {i} plants at home", session_id="s", user_id="ann")
            bot.flush()
        versions = bot.summaries.store.versions("ann", "s")
        history = bot.history("s", user_id="ann")
        calls = bot.store.provider_calls("ann")
    assert len(versions) >= 3
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert {v.from_id for v in versions} == {history[0].id}  # the range only grows
    assert all(a.to_id < b.to_id for a, b in zip(versions, versions[1:]))
    assert all(v.method == "model" and v.error is None for v in versions)
    requests = [r for r in model.requests if r.metadata.get("purpose") == "summary"]
    assert len(requests) == len(versions) == len([c for c in calls if c["purpose"] == "summary"])
    by_id = {m.id: m for m in history}
    for previous, version, request in zip([None, *versions], versions, requests):
        source = str(request.messages[-1].content)
        new_part = source.split("New turns:", 1)[1]
        folded = {int(n) for n in MARK.findall(new_part)}
        expected = {int(MARK.search(m.content).group(1)) for i, m in by_id.items()  # type: ignore[union-attr]
                    if (previous.to_id if previous else 0) < i <= version.to_id and m.role == "user"}
        assert folded == expected  # only the newly dropped turns, never the whole history
        if previous is not None:  # the previous summary is fed in
            assert previous.text.split("\n")[0] in source
    latest = versions[-1]
    assert latest.text.endswith(LATEST + by_id[max(i for i in by_id if i <= latest.to_id
                                                   and by_id[i].role == "user")].content)
    report = reply.context
    assert report is not None and report.summary_tokens > 0
    assert report.summary_tokens <= report.budgets["summary"]
    assert (report.summary_from_id, report.summary_to_id) == (history[0].id, versions[-2].to_id) or \
        (report.summary_from_id, report.summary_to_id) == (history[0].id, versions[-1].to_id)
    prompt = [r for r in model.requests if r.metadata.get("purpose") == "chat"][-1]
    assert str(prompt.messages[0].content).count(HEADER) == 1
    assert min(report.message_ids) > report.summary_from_id  # the window moved on


@pytest.mark.parametrize("junk", [
    "I am not sure what you mean.",
    json.dumps({"summary": "the the the the the the the the the the the the the the"}),
    json.dumps({"summary": ""}),
    json.dumps({"summary": "Output JSON matching the schema {summary}"}),
    json.dumps({"summary": "Quantum zebras orchestrate lunar marmalade symphonies daily"}),
    json.dumps({"note": "wrong key"}),
])
def test_model_junk_falls_back_to_the_extractive_summary(database_url: str, junk: str) -> None:
    store = ConversationStore(open_engine(database_url))
    for content in ("hi there", "My name is Ines and I live in Porto.", "lovely weather today",
                    "Please remind me to call the dentist on 3 March?"):
        store.add_message("ines", "s", "user", content)
        last = store.add_message("ines", "s", "assistant", "ok")
    summaries = SummaryStore(store.engine)
    model = ScriptedModel(fn=lambda messages: junk)
    record = Summariser(summaries, model, max_tokens=60, extract=extract).fold("ines", "s", last.id)
    assert record is not None and record.method == "extractive" and record.error
    assert record.text.endswith(LATEST + "Please remind me to call the dentist on 3 March?")
    assert "Ines" in record.text and "Porto" in record.text
    assert "lovely weather" not in record.text
    assert model.requests and model.requests[0].metadata["purpose"] == "summary"


def test_a_failing_model_falls_back_and_the_next_fold_builds_on_it(database_url: str) -> None:
    store = ConversationStore(open_engine(database_url))
    first = [store.add_message("u", "s", "user", "I work at Acme as a welder since 2019."),
             store.add_message("u", "s", "assistant", "Nice.")]
    model = ScriptedModel([ProviderUnavailable("down", provider="scripted")])
    summaries = SummaryStore(store.engine)
    summariser = Summariser(summaries, model, max_tokens=80, extract=extract)
    v1 = summariser.fold("u", "s", first[-1].id)
    assert v1 is not None and v1.method == "extractive" and "ProviderUnavailable" in (v1.error or "")
    second = [store.add_message("u", "s", "user", "Can you book a table for 4 on Friday?"),
              store.add_message("u", "s", "assistant", "Booked.")]
    model.enqueue(json.dumps({"summary": "The user works at Acme as a welder and asked to book "
                                         "a table for 4 on Friday."}))
    v2 = summariser.fold("u", "s", second[-1].id)
    assert v2 is not None and v2.method == "model" and v2.version == 2
    assert (v2.from_id, v2.to_id) == (first[0].id, second[-1].id)
    source = str(model.requests[-1].messages[-1].content)
    assert "welder" in source.split("New turns:")[0]  # fed the previous summary ...
    assert "I work at Acme" not in source.split("New turns:")[1]  # ... not the old turns
    assert v2.text.endswith(LATEST + "Can you book a table for 4 on Friday?")
    assert summariser.fold("u", "s", second[-1].id) == v2  # nothing new: no new version
    assert len(model.requests) == 2


def test_summary_failure_never_fails_a_turn(settings: Settings) -> None:
    model = ScriptedModel(fn=faithful, context_window=160)
    with Assistant(cfg(settings, job_backoff_initial_s=60), model=model) as bot:
        bot.chat("turn-0-mark: hello", session_id="s")
        with bot.store.engine.begin() as conn:
            conn.execute(text("DROP TABLE session_summaries"))
        replies = [bot.chat(f"turn-{i}-mark: I like tea number {i}", session_id="s") for i in range(1, 12)]
        bot.flush()
        jobs = bot.jobs.jobs(kind="summary")
    assert all(r.ok and r.text == "noted" for r in replies)
    assert replies[-1].context is not None and replies[-1].context.dropped_messages > 0
    assert jobs and all(j.status in ("queued", "dead") and j.last_error for j in jobs)


def test_an_injected_model_is_not_asked_for_summaries_by_default(settings: Settings) -> None:
    """With ``summary_model=auto`` a test's scripted replies are never spent on summaries."""
    replies = [f"reply {i}" for i in range(12)]
    model = ScriptedModel(replies, context_window=120)
    with Assistant(cfg(settings, summary_model="auto"), model=model) as bot:
        got = []
        for i in range(12):
            got.append(bot.chat(f"turn-{i}-mark: my bike is number {i}", session_id="s").text)
            bot.flush()
        versions = bot.summaries.store.versions("default", "s")
    assert got == replies
    assert versions and all(v.method == "extractive" and v.model is None for v in versions)
    assert all(r.metadata.get("purpose") == "chat" for r in model.requests)
    assert "my bike is number" in versions[-1].text


def test_summaries_are_private_to_their_user(settings: Settings) -> None:
    model = ScriptedModel(fn=faithful, context_window=160)
    with Assistant(cfg(settings), model=model) as bot:
        for i in range(10):
            bot.chat(f"turn-{i}-mark: my secret code is {i}", session_id="same", user_id="alice")
        bot.chat("turn-99-mark: hi", session_id="same", user_id="bob")
        bot.flush()
        store = bot.summaries.store
        assert store.latest("alice", "same") is not None
        assert store.latest("bob", "same") is None and store.versions("bob", "same") == []
        assert store.turns("bob", "same", 0, 10**9)[0].content == "turn-99-mark: hi"
        assert store.versions("mallory", "same") == []
    bob_chat = [r for r in model.requests if r.metadata.get("user_id") == "bob"]
    assert bob_chat and all("secret" not in str(m.content) for r in bob_chat for m in r.messages)


def test_extractive_summary_is_salient_bounded_and_deterministic() -> None:
    turns = [("user", "hi"), ("assistant", "Hello! How can I help?"),
             ("user", "My daughter Maya turns 7 on 12 June. The weather is nice."),
             ("user", "I prefer vegetarian food."), ("assistant", "Noted."),
             ("user", "ok cool"), ("user", "Can you suggest a cake for her party?")]
    one = extractive_summary("", turns, max_tokens=60)
    assert one == extractive_summary("", turns, max_tokens=60)
    assert approx_token_count(one) <= 60
    assert "Maya turns 7 on 12 June" in one and "vegetarian" in one
    assert "weather" not in one and "ok cool" not in one and "Hello" not in one
    assert one.endswith(LATEST + "Can you suggest a cake for her party?")
    later = extractive_summary(one, [("user", "I moved to Lisbon last year."),
                                     ("user", "What should I cook tonight?")], max_tokens=60)
    assert "Maya" in later and "Lisbon" in later
    assert "Earlier request: Can you suggest a cake" in later
    assert later.endswith(LATEST + "What should I cook tonight?")
    tight = extractive_summary(later, [("user", "And remind me about the dentist please")],
                               max_tokens=12)
    assert tight and approx_token_count(tight) <= 12 and LATEST in tight


def test_extractive_summary_is_never_empty() -> None:
    only_bot = extractive_summary("", [("assistant", "The build finished. All green.")], max_tokens=40)
    assert only_bot.startswith("- Assistant: The build finished.")
    huge = "please " + "very " * 500 + "long request"
    clipped = extractive_summary("", [("user", huge)], max_tokens=10)
    assert clipped.startswith(LATEST + "please very")


def test_junk_detector_and_block_rendering() -> None:
    source = "Previous summary: (none yet)\n\nNew turns:\nUser: I live in Porto with two cats."
    assert looks_like_junk("The user lives in Porto with two cats.", source) is None
    assert looks_like_junk("ok", source) == "too short"
    assert looks_like_junk("cats " * 20, source) == "repetitive"
    assert looks_like_junk("Astronomy bananas forever shining purple", source) == "not grounded in the turns"
    summary = "\n".join(f"- fact number {i} about the user" for i in range(20)) + f"\n{LATEST}book flights"
    full = render_summary_block(summary, 1000, approx_token_count)
    assert full.startswith(HEADER) and "fact number 0" in full and full.endswith("book flights")
    small = render_summary_block(summary, 40, approx_token_count)
    assert approx_token_count(small) <= 40 and "fact number 19" in small and "fact number 0" not in small
    assert small.endswith(LATEST + "book flights")
    assert render_summary_block(summary, 3, approx_token_count) == ""


@pytest.mark.slow
def test_the_local_model_writes_a_summary_or_the_fallback_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "d", index_turns=False, facts_enabled=False,
                        local_n_ctx=2048, max_reply_tokens=48, summary_model="chat")
    with Assistant(settings) as bot:
        store = bot.store
        for content, reply in [("My name is Tom and I live in Oslo.", "Nice to meet you, Tom."),
                               ("I have a dog called Rex.", "Rex is a great name."),
                               ("Can you suggest a walk near Oslo for Sunday?", "Try Sognsvann lake.")]:
            store.add_message("tom", "s", "user", content)
            last = store.add_message("tom", "s", "assistant", reply)
        record = bot.summaries.summariser.fold("tom", "s", last.id)
        calls = store.provider_calls("tom")
    assert record is not None and record.method in ("model", "extractive") and record.text.strip()
    assert record.text.endswith(LATEST + "Can you suggest a walk near Oslo for Sunday?")
    assert record.model and "local" in record.model
    assert [c["purpose"] for c in calls] == ["summary"]
    print(f"\nlocal summary ({record.method}): {record.text!r} {record.error or ''}")
