"""Composition in one place (issue 11): ``assistant.wiring`` builds every part of an
``Assistant``; sessions and facts are sub-objects, not mixins; the old method names keep
working with a ``DeprecationWarning`` naming the new call. SQLite and PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

import memory.facts_jobs
from assistant import Assistant, ScriptedModel, Settings, wiring
from assistant.errors import ConfigurationError, FactNotFound, SessionNotFound
from assistant.facts import Facts
from assistant.sessions import Sessions
from memory.facts_jobs import FACTS_JOB, facts_rule
from memory.facts_recall import LayeredRecall
from memory.indexer import INDEX_JOB, SWEEP_JOB
from memory.outbox import Outbox
from memory.recall import TurnMemory


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"job_backoff_initial_s": 0.05, "job_backoff_max_s": 0.2,
                                       "job_poll_s": 0.05})


def _prompt(model: ScriptedModel) -> str:
    return "\n".join(str(m.content) for m in model.requests[-1].messages)


def test_sessions_sub_object(fast: Settings) -> None:
    model = ScriptedModel().enqueue("First answer.", "Second answer.", "Hello Al.")
    with Assistant(fast.model_copy(update={"index_turns": False}), model=model) as bot:
        assert isinstance(bot.sessions, Sessions)
        made = bot.sessions.new("ann", "Plans")
        assert [s.session_id for s in bot.sessions.list("ann")] == [made.session_id]
        assert bot.sessions.list("bob") == []
        assert bot.sessions.rename(made.session_id, "Trip", user_id="ann").title == "Trip"
        first = bot.chat("Tell me a fact.", session_id=made.session_id, user_id="ann")
        assert first.message_id is not None
        bot.sessions.feedback(first.message_id, 1, user_id="ann")
        assert bot.store.feedback("ann", made.session_id) == {first.message_id: 1}  # type: ignore[attr-defined]
        assert bot.sessions.regenerate(made.session_id, user_id="ann").text() == "Second answer."
        assert "First answer." not in _prompt(model)
        assert bot.sessions.edit_and_resend("Hi, I am Al.", session_id=made.session_id,
                                            user_id="ann").text() == "Hello Al."
        rows = [(m.role, m.content, m.status) for m in bot.sessions.history(made.session_id, "ann")]
        assert rows == [("user", "Tell me a fact.", "superseded"),
                        ("assistant", "First answer.", "superseded"),
                        ("assistant", "Second answer.", "superseded"),
                        ("user", "Hi, I am Al.", "ok"), ("assistant", "Hello Al.", "ok")]
        assert bot.sessions.summary(made.session_id, user_id="ann") is None  # nothing folded yet
        with pytest.raises(SessionNotFound):
            bot.sessions.delete(made.session_id, user_id="bob")
        assert bot.sessions.delete(made.session_id, user_id="ann") == 5
        assert bot.sessions.list("ann") == []


def test_facts_sub_object(fast: Settings) -> None:
    with Assistant(fast, model=ScriptedModel(fn=lambda m: "ok")) as bot:
        assert isinstance(bot.facts, Facts) and bot.facts.enabled
        bot.chat("I work at Acme and I like chess", session_id="s", user_id="ana")
        bot.flush()
        work = next(f for f in bot.facts.list("ana") if f.key == "employer")
        said = [m.content for m in bot.facts.sources("ana", work.id)]
        assert said == ["I work at Acme and I like chess"]
        edited = bot.facts.edit("ana", work.id, "The user works at Acme Robotics.")
        assert edited.supersedes == work.id
        assert [f.status for f in bot.facts.list("ana", include_history=True)
                if f.key == "employer"] == ["superseded", "valid"]
        with pytest.raises(FactNotFound):
            bot.facts.sources("bob", edited.id)
        assert [f.value for f in bot.facts.forget("ana", "that I like chess").forgotten] == ["chess"]
        assert bot.facts.list("bob") == []


def test_facts_off_lists_nothing_and_refuses_changes_clearly() -> None:
    off = Facts(None)
    assert not off.enabled and off.list("ana") == []
    with pytest.raises(ConfigurationError, match="fact memory is off"):
        off.edit("ana", 1, "x")


def _same(old: Callable[[], Any], new: Callable[[], Any], names: str) -> Any:
    with pytest.warns(DeprecationWarning, match=names):
        got = old()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names never warn
        assert got == new()
    return got


def test_old_names_warn_and_still_work(fast: Settings) -> None:
    model = ScriptedModel(fn=lambda m: "Noted.")
    with Assistant(fast, model=model) as bot:
        s = bot.new_session("ana")
        with pytest.warns(DeprecationWarning, match=r"sessions\.new"):
            bot.new_session("ana")
        _same(lambda: bot.sessions("ana"), lambda: bot.sessions.list("ana"), r"sessions\.list")
        with pytest.warns(DeprecationWarning, match=r"sessions\.rename"):
            assert bot.rename_session(s.session_id, "Home", user_id="ana").title == "Home"
        reply = bot.chat("I live in Lisbon.", session_id=s.session_id, user_id="ana")
        bot.flush()
        _same(lambda: bot.history(s.session_id, user_id="ana"),
              lambda: bot.sessions.history(s.session_id, user_id="ana"), r"sessions\.history")
        with pytest.warns(DeprecationWarning, match=r"sessions\.feedback"):
            bot.feedback(reply.message_id, -1, user_id="ana")
        assert bot.store.feedback("ana", s.session_id) == {reply.message_id: -1}  # type: ignore[attr-defined]
        with pytest.warns(DeprecationWarning, match=r"sessions\.summary"):
            assert bot.session_summary(s.session_id, user_id="ana") is None
        [fact] = _same(lambda: bot.facts("ana"), lambda: bot.facts.list("ana"), r"facts\.list")
        _same(lambda: bot.facts("ana", include_history=True),
              lambda: bot.facts.list("ana", include_history=True), r"facts\.list")
        _same(lambda: bot.fact_sources("ana", fact.id), lambda: bot.facts.sources("ana", fact.id),
              r"facts\.sources")
        with pytest.warns(DeprecationWarning, match=r"facts\.edit"):
            edited = bot.edit_fact("ana", fact.id, "The user lives in Braga.")
        with pytest.warns(DeprecationWarning, match=r"facts\.forget"):
            assert [f.id for f in bot.forget("ana", edited.id).forgotten] == [edited.id]
        with pytest.warns(DeprecationWarning, match=r"sessions\.regenerate"):
            assert bot.regenerate(s.session_id, user_id="ana").text() == "Noted."
        with pytest.warns(DeprecationWarning, match=r"sessions\.edit_and_resend"):
            assert bot.edit_and_resend("I live in Faro.", session_id=s.session_id,
                                       user_id="ana").text() == "Noted."
        with pytest.warns(DeprecationWarning, match=r"sessions\.delete"):
            assert bot.delete_session(s.session_id, user_id="ana") == 5  # 1 + regenerate + edit
        assert s.session_id not in {x.session_id for x in bot.sessions.list("ana")}


def test_wiring_composes_recall_and_recorders_up_front(fast: Settings) -> None:
    parts = wiring.build(fast, model=ScriptedModel())
    try:
        # facts first, then the turn memory the indexer fills; one facts job per user turn
        assert isinstance(parts.memory, LayeredRecall) and isinstance(parts.memory.turns, TurnMemory)
        assert parts.memory.facts.memory is parts.facts_memory
        # the store's outbox writes an index and a facts job with each user message
        assert isinstance(parts.recorder, Outbox) and parts.store.outbox is parts.recorder
        assert facts_rule in parts.recorder.rules and len(parts.recorder.rules) == 2
        assert parts.worker is not None and {FACTS_JOB, "summary", INDEX_JOB, SWEEP_JOB} <= set(
            parts.worker.handlers)
        assert parts.chat.injected and parts.chat.built is not None
        assert parts.review is not None and parts.summaries is not None
    finally:
        for owned in parts.owned:
            owned.close()
    plain = wiring.build(fast.model_copy(update={"facts_enabled": False, "index_turns": False}),
                         model=ScriptedModel())
    try:
        assert plain.memory is None and plain.facts_memory is None
        assert isinstance(plain.recorder, Outbox) and plain.recorder.rules == []
    finally:
        for owned in plain.owned:
            owned.close()


def test_an_embedders_recall_is_layered_under_the_facts(fast: Settings) -> None:
    class Mine:
        def recall(self, user_id, query, *, token_budget, exclude=(), count_tokens=len):
            raise AssertionError("not called here")

    mine = Mine()
    with Assistant(fast.model_copy(update={"index_turns": False}), model=ScriptedModel(),
                   memory=mine) as bot:
        assert isinstance(bot.memory, LayeredRecall) and bot.memory.turns is mine
        assert isinstance(bot.recorder, Outbox) and bot.recorder.rules == [facts_rule]
        assert bot.sessions.memory is bot.memory  # a deleted session leaves the same recall


def test_assistant_is_a_facade_not_a_mixin_stack() -> None:
    assert Assistant.__mro__ == (Assistant, object)
    assert not hasattr(memory.facts_jobs, "attach_facts")  # nothing rewires an Assistant
