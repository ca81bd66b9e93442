"""Budgeted context assembly: the split, the pending-question rule, tool-call pairing.

Real SQL (SQLite and PostgreSQL via ``database_url``) and the real orchestrator; the
model is ``ScriptedModel`` with a small window so the window really slides. Recall and
documents are plugged in through their protocols with small deterministic
implementations (clean boundaries: the retrievers have their own tests).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import ValidationError

from assistant import Assistant, ScriptedModel, Settings
from assistant.context import Blocks, assemble_context, build_context, select_window, to_langchain
from assistant.errors import SessionNotFound
from assistant.protocols import Grounding, SourceRef
from guardrails import Guard
from memory.context_split import plan_split
from assistant.turn_context import render_sources
from memory.recall import Recalled
from memory.store import StoredMessage

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def quiet(settings: Settings, **update: object) -> Settings:
    """No Chroma indexing, no summaries: just the window, unless a test turns them on."""
    return settings.model_copy(update={"index_turns": False, "summarize_sessions": False,
                                       "facts_enabled": False, **update})


# -- pending question ---------------------------------------------------------------------

def test_pending_question_is_kept_even_when_it_alone_overflows(settings: Settings) -> None:
    model = ScriptedModel(fn=lambda messages: "fine, thanks", context_window=160)
    with Assistant(quiet(settings, max_reply_tokens=32), model=model) as bot:
        for i in range(5):
            bot.chat(f"small talk number {i}", session_id="s")
        question = " ".join(f"w{i}" for i in range(300)) + " so what is the answer?"
        reply = bot.chat(question, session_id="s")
    sent = model.requests[-1].messages
    assert [type(m) for m in sent] == [SystemMessage, HumanMessage]
    assert sent[-1].content == question
    report = reply.context
    assert report is not None and report.budget == 160 - 32
    assert report.history_messages == 1 and report.dropped_messages == 10
    assert report.history_tokens > report.budget  # over budget, and still sent


def test_window_slides_and_stays_within_budget(settings: Settings) -> None:
    model = ScriptedModel(fn=lambda messages: "noted and understood", context_window=120)
    with Assistant(quiet(settings, max_reply_tokens=20), model=model) as bot:
        for i in range(25):
            reply = bot.chat(f"fact {i}: my locker number is {1000 + i}", session_id="s")
            sent = model.requests[-1].messages
            assert model.count_tokens(sent) <= 100
            assert isinstance(sent[1], HumanMessage) and sent[-1].content.startswith(f"fact {i}:")
        stored = bot.history("s")[-1].context
    assert reply.context is not None and reply.context.dropped_messages > 30
    assert stored is not None and stored["message_ids"] == reply.context.message_ids
    assert min(stored["message_ids"]) > bot.history("s")[0].id  # the oldest turns left


# -- tool calls ---------------------------------------------------------------------------

def _msg(i: int, role: str, content: str = "", *, status: str = "ok", context: dict | None = None,
         tokens: int | None = None) -> StoredMessage:
    return StoredMessage(id=i, session_id="s", user_id="u", role=role, content=content or f"{role} {i}",
                         status=status, created_at=NOW, context=context, token_count=tokens)


def _call(i: int, *ids: str, status: str = "ok") -> StoredMessage:
    calls = [{"id": c, "name": "weather", "args": {"city": c}} for c in ids]
    return _msg(i, "assistant", "", status=status, context={"tool_calls": calls})


def _result(i: int, call_id: str) -> StoredMessage:
    return _msg(i, "tool", f"sunny in {call_id}", context={"tool_call_id": call_id, "name": "weather"})


def assert_well_formed(messages: list[BaseMessage]) -> None:
    """No orphan tool result, no tool call without all its results, a user turn first."""
    turns = [m for m in messages if not isinstance(m, SystemMessage)]
    assert not turns or isinstance(turns[0], HumanMessage), [type(m).__name__ for m in turns]
    open_calls: set[str] = set()
    for m in turns:
        if isinstance(m, ToolMessage):
            assert m.tool_call_id in open_calls, f"orphan tool result {m.tool_call_id}"
            open_calls.discard(m.tool_call_id)
            continue
        assert not open_calls, f"tool calls {open_calls} lost their results"
        if isinstance(m, AIMessage):
            open_calls = {c["id"] for c in m.tool_calls}
    assert not open_calls, f"tool calls {open_calls} lost their results"


def count(messages: list[BaseMessage]) -> int:
    return ScriptedModel().count_tokens(messages)


LAYOUT = [_msg(1, "user", "weather in Paris and Rome?"), _call(2, "paris", "rome"),
          _result(3, "paris"), _result(4, "rome"), _msg(5, "assistant", "both sunny"),
          _msg(6, "user", "thanks, and Oslo?")]


@pytest.mark.parametrize("budget", range(0, 60, 3))
def test_a_tool_call_and_its_results_are_kept_or_dropped_together(budget: int) -> None:
    messages, report = build_context("", LAYOUT, budget=budget, count=count)
    assert_well_formed(messages)
    kept = set(report.message_ids)
    assert 6 in kept  # the pending question, whatever the budget
    assert kept & {2, 3, 4} in (set(), {2, 3, 4})
    assert report.history_tokens <= max(budget, count([to_langchain(LAYOUT[-1])]))
    ai = next((m for m in messages if isinstance(m, AIMessage) and m.tool_calls), None)
    if ai is not None:  # mapped to langchain-core's own tool-call types
        assert [c["id"] for c in ai.tool_calls] == ["paris", "rome"]
        assert [m.tool_call_id for m in messages if isinstance(m, ToolMessage)] == ["paris", "rome"]


@pytest.mark.parametrize("history,budget,expected", [
    # a result whose call fell outside the scanned history: dropped, window opens on a user turn
    ([_result(3, "paris"), _result(4, "rome"), _msg(5, "assistant", "both sunny"),
      _msg(6, "user", "ok")], 1000, [6]),
    # a call missing one of its two results: the call and the partial result both go
    ([_msg(1, "user", "q"), _call(2, "a", "b"), _result(3, "a"), _msg(4, "assistant", "done"),
      _msg(5, "user", "next")], 1000, [1, 4, 5]),
    # a failed tool-call message: its results are orphans and go too
    ([_msg(1, "user", "q"), _call(2, "a", status="error"), _result(3, "a"), _msg(4, "user", "again")],
     1000, [1, 4]),
    # the pending turn's own tool exchange is part of the protected tail
    ([_msg(1, "user", "old " * 50), _msg(2, "user", "weather?"), _call(3, "x", "y"),
      _result(4, "x"), _result(5, "y")], 5, [2, 3, 4, 5]),
])
def test_tool_layouts(history: list[StoredMessage], budget: int, expected: list[int]) -> None:
    kept, _, _ = select_window(history, budget, count)
    assert [m.id for m in kept] == expected
    assert_well_formed([to_langchain(m) for m in kept])


@pytest.mark.parametrize("seed", range(40))
def test_random_layouts_never_split_a_tool_exchange(seed: int) -> None:
    rng = random.Random(seed)
    history: list[StoredMessage] = []
    i = 0
    for _ in range(rng.randint(1, 12)):
        i += 1
        history.append(_msg(i, "user", "word " * rng.randint(1, 20)))
        for _ in range(rng.randint(0, 2)):  # tool rounds, some incomplete or failed
            ids = [f"c{i}-{k}" for k in range(rng.randint(1, 3))]
            i += 1
            history.append(_call(i, *ids, status=rng.choice(["ok", "ok", "ok", "error"])))
            for cid in ids:
                if rng.random() > 0.15:
                    i += 1
                    history.append(_result(i, cid))
        if rng.random() > 0.3:
            i += 1
            history.append(_msg(i, "assistant", "reply " * rng.randint(1, 20)))
    history = history[rng.randint(0, max(0, len(history) - 1)) // 2:]  # a scan cut
    for budget in (0, 10, 40, 120, 10_000):
        messages, report = build_context("sys", history, budget=budget, count=count)
        assert_well_formed(messages)
        last_user = max(m.id for m in history if m.role == "user") if any(
            m.role == "user" for m in history) else None
        if last_user is not None:
            assert last_user in report.message_ids


def test_tool_messages_round_trip_through_the_store(settings: Settings) -> None:
    model = ScriptedModel(fn=lambda messages: "It is sunny in both.", context_window=4096)
    with Assistant(quiet(settings), model=model) as bot:
        store = bot.store
        store.add_message("ann", "s", "user", "weather in Paris and Rome?")
        call = store.add_tool_call("ann", "s", [{"id": "c1", "name": "weather", "args": {"city": "Paris"}},
                                                {"id": "c2", "name": "weather", "args": {"city": "Rome"}}])
        store.add_tool_result("ann", "s", "c1", "Paris: 21C sunny", name="weather")
        store.add_tool_result("ann", "s", "c2", "Rome: 25C sunny", name="weather")
        with pytest.raises(ValueError, match="no tool call 'c9'"):
            store.add_tool_result("ann", "s", "c9", "nope")
        with pytest.raises(SessionNotFound):  # another user cannot answer ann's calls
            store.add_tool_result("bob", "s", "c1", "hijack")
        with pytest.raises(ValueError, match="name"):
            store.add_tool_call("ann", "s", [{"id": "c3", "args": {}}])
        bot.chat("and tomorrow?", session_id="s", user_id="ann")
        history = bot.history("s", user_id="ann")
    assert call.tool_calls[1] == {"id": "c2", "name": "weather", "args": {"city": "Rome"}}
    assert [m.role for m in history] == ["user", "assistant", "tool", "tool", "user", "assistant"]
    assert history[2].tool_call_id == "c1"
    sent = model.requests[-1].messages
    assert_well_formed(list(sent))
    assert [type(m).__name__ for m in sent[1:]] == ["HumanMessage", "AIMessage", "ToolMessage",
                                                    "ToolMessage", "HumanMessage"]
    assert sent[2].tool_calls[0]["args"] == {"city": "Paris"}


def test_stored_tool_exchange_slides_out_whole(settings: Settings) -> None:
    """Budgets sweep the window boundary across a stored exchange with two calls."""
    model = ScriptedModel(fn=lambda messages: "ok", context_window=4096)
    with Assistant(quiet(settings), model=model) as bot:
        store = bot.store
        for i in range(3):
            store.add_message("u", "s", "user", f"question {i} " + "pad " * 5)
            store.add_tool_call("u", "s", [{"id": f"t{i}a", "name": "f", "args": {}},
                                           {"id": f"t{i}b", "name": "g", "args": {"n": i}}])
            store.add_tool_result("u", "s", f"t{i}a", "result a " * 3)
            store.add_tool_result("u", "s", f"t{i}b", "result b " * 3)
            store.add_message("u", "s", "assistant", f"answer {i}")
        store.add_message("u", "s", "user", "and now?")
        history = store.recent("u", "s", 200)
    sizes = set()
    for budget in range(0, 200, 4):
        messages, report = build_context("", history, budget=budget, count=model.count_tokens)
        assert_well_formed(messages)
        assert report.message_ids[-1] == history[-1].id
        sizes.add(len(messages))
    assert len(sizes) >= 4  # the sweep really moved the boundary


# -- the split ----------------------------------------------------------------------------

class ListRecall:
    """A Recall over fixed lines (one per message id), filling its budget like the real one."""

    def __init__(self, lines: dict[int, str], user: str = "ann") -> None:
        self.lines, self.user = lines, user
        self.calls: list[int] = []

    def recall(self, user_id, query, *, token_budget, exclude=(), count_tokens=len):  # type: ignore[no-untyped-def]
        self.calls.append(token_budget)
        if user_id != self.user:
            return Recalled()
        text, ids, items = "Relevant memories:", [], []
        for i, line in self.lines.items():
            candidate = f"{text}\n- [msg-{i} | 1 May 2026] {line}"
            if i in exclude or count_tokens(candidate) > token_budget:
                continue
            text, ids = candidate, ids + [i]
            items.append({"id": f"msg-{i}", "text": line, "source": "memory", "date": "2026-05-01"})
        return Recalled(text, ids, items) if ids else Recalled()


class ListDocuments:
    def __init__(self, texts: list[str], user: str = "ann") -> None:
        self.texts, self.user = texts, user
        self.budgets: list[int] = []

    def retrieve(self, user_id, query, *, token_budget, count_tokens):  # type: ignore[no-untyped-def]
        self.budgets.append(token_budget)
        if user_id != self.user:
            return Grounding()
        sources = [SourceRef(str(n), f"chunk-{n}", f"Manual {n}", f"docs/m{n}.pdf", t, page=n)
                   for n, t in enumerate(self.texts, 1)]
        text = render_sources(sources, token_budget, count_tokens)
        return Grounding(text, sources[: text.count("\n[")]) if text else Grounding()


def test_settings_reject_shares_that_do_not_fit() -> None:
    with pytest.raises(ValidationError, match="sum to at most 1"):
        Settings(context_memory_share=0.5, context_documents_share=0.4)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Settings(context_summary_share=-0.1)
    split = plan_split(Settings(max_reply_tokens=100, summary_max_tokens=50), 1100, 100)
    assert (split.prompt, split.reply) == (1000, 100)
    assert split.summary == 50 and split.memory == 180 and split.documents == 225
    assert split.recent_min == 225


def test_split_is_respected_and_recorded(settings: Settings) -> None:
    lines = {900 + i: f"remembered detail number {i} " + "about things " * 4 for i in range(40)}
    memory = ListRecall(lines)
    docs = ListDocuments(["The boiler resets by holding the red button " * 3,
                          "Warranty lasts two years " * 4, "Filters are changed monthly " * 4])
    cfg = quiet(settings, max_reply_tokens=50, context_memory_share=0.2,
                context_documents_share=0.3, context_summary_share=0.1)
    model = ScriptedModel(fn=lambda messages: "sure thing", context_window=450)
    with Assistant(cfg, model=model, memory=memory, documents=docs) as bot:
        for i in range(12):
            reply = bot.chat(f"question {i} about the boiler " + "please " * 5, session_id="s",
                             user_id="ann")
        stored = bot.history("s", user_id="ann")[-1].context
    report = reply.context
    assert report is not None and stored is not None
    budgets = report.budgets
    assert budgets["prompt"] == 400 and budgets["reply"] == 50 and budgets["window"] == 450
    avail = 400 - report.system_tokens
    assert budgets["memory"] == int(avail * 0.2) and budgets["documents"] == int(avail * 0.3)
    assert 0 < report.memory_tokens <= budgets["memory_granted"]  # grows into unused recent tokens
    assert 0 < report.documents_tokens <= budgets["documents"]
    assert report.document_ids and report.document_ids[0] == "chunk-1"
    assert report.total_tokens <= 400
    assert budgets["summary"] == 0 and report.summary_tokens == 0  # summaries off: share unused
    # what the blocks did not use went to the recent turns, which stayed within it
    assert budgets["recent"] >= avail - budgets["documents"] - budgets["memory"]
    assert 0 < report.history_tokens <= budgets["recent"]
    for key in ("budget", "system_tokens", "history_tokens", "message_ids", "memory_tokens",
                "memory_ids", "total_tokens", "summary_tokens", "documents_tokens", "budgets",
                "summary_from_id", "summary_to_id", "reply_reserve"):
        assert key in stored
    assert stored["budgets"] == budgets and stored["documents_tokens"] == report.documents_tokens
    system = model.requests[-1].messages[0].content
    assert "Relevant memories:" in system and "[1] Manual 1" in system
    assert memory.calls[-1] == budgets["memory_granted"] and docs.budgets[-1] == budgets["documents"]


def test_unused_block_budget_flows_to_recent_turns(settings: Settings) -> None:
    def run(memory: ListRecall) -> tuple[int, int]:
        model = ScriptedModel(fn=lambda messages: "sure", context_window=400)
        with Assistant(quiet(settings, max_reply_tokens=40, context_memory_share=0.4,
                             context_documents_share=0.2), model=model, memory=memory) as bot:
            for i in range(20):
                reply = bot.chat(f"turn {i} with several filler words in it", session_id=f"s{id(memory)}",
                                 user_id="ann")
        assert reply.context is not None
        return reply.context.history_messages, reply.context.memory_tokens

    full_msgs, full_mem = run(ListRecall({9000 + i: "a memory line " * 3 for i in range(50)}))
    empty_msgs, empty_mem = run(ListRecall({}))
    assert full_mem > 0 and empty_mem == 0
    assert empty_msgs > full_msgs  # the memory share went to the window when unused


def test_snippets_and_sources_reach_the_request_and_guards(settings: Settings) -> None:
    class DropSecond(Guard):
        seen: list[str] = []

        def after_retrieval(self, ctx, items):  # type: ignore[no-untyped-def]
            refs = [i for i in items if isinstance(i, SourceRef)]
            if refs:  # recalled memories pass after_retrieval too (their own call)
                DropSecond.seen = [r.id for r in refs]
            return [i for i in items if getattr(i, "id", None) != "2"]

    memory = ListRecall({77: "Ann's boiler is a Vaillant ecoTEC"})
    docs = ListDocuments(["Reset: hold the red button.", "Ignore this second source.",
                          "Service yearly."])
    model = ScriptedModel(fn=lambda messages: "Hold the red button [1].")
    with Assistant(quiet(settings), model=model, memory=memory, documents=docs,
                   guards=[DropSecond()]) as bot:
        reply = bot.chat("how do I reset the boiler?", session_id="s", user_id="ann")
        bot.chat("and for bob?", session_id="s", user_id="bob")
    request = model.requests[0]
    snippets = request.metadata["snippets"]
    assert DropSecond.seen == ["1", "2", "3"]
    assert [s["id"] for s in snippets] == ["msg-77", "1", "3"]
    assert snippets[0] == {"id": "msg-77", "text": "Ann's boiler is a Vaillant ecoTEC",
                           "source": "memory", "date": "2026-05-01"}
    assert snippets[1]["source"] == "Manual 1" and snippets[1]["text"] == "Reset: hold the red button."
    system = request.messages[0].content
    assert "[3] Manual 3" in system and "Ignore this second source" not in system
    assert reply.context is not None and reply.context.document_ids == ["chunk-1", "chunk-3"]
    bob = model.requests[1]
    assert bob.metadata["snippets"] == []  # nothing of ann's reaches bob
    assert "Manual" not in bob.messages[0].content


def test_a_failing_block_never_fails_the_turn(settings: Settings) -> None:
    class Broken:
        def recall(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("index is down")

        def retrieve(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("documents are down")

    model = ScriptedModel(fn=lambda messages: "still here")
    with Assistant(quiet(settings), model=model, memory=Broken(), documents=Broken()) as bot:
        reply = bot.chat("hello?", session_id="s")
    assert reply.ok and reply.text == "still here"
    assert reply.context is not None and reply.context.memory_tokens == 0
    assert reply.context.documents_tokens == 0


def test_assemble_without_blocks_matches_plain_window() -> None:
    split = plan_split(Settings(max_reply_tokens=10), 80, 3, memory=False, documents=False,
                       summary=False)
    history = [_msg(i, "user" if i % 2 else "assistant", "some words here") for i in range(1, 30)]
    messages, report = assemble_context("sys", history, split=split, count=count, blocks=Blocks())
    plain, plain_report = build_context("sys", history, budget=split.prompt, count=count)
    assert [m.content for m in messages] == [m.content for m in plain]
    assert report.message_ids == plain_report.message_ids and report.total_tokens <= 70
