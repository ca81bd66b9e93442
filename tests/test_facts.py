"""Fact memory with provenance, end to end on real SQLite/PostgreSQL and real Chroma:
rules, reconcile (ADD / UPDATE / DELETE / NOOP), the prompt, the people API, isolation,
and extraction through the durable queue (invalid output, provider outage, restart)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import timedelta

import pytest
from langchain_core.messages import BaseMessage

from assistant import Assistant, Settings
from assistant.errors import FactNotFound, ProviderUnavailable
from assistant.extract import extract
from assistant.providers import ScriptedModel
from guardrails import GuardChain, default_pipeline
from memory.db import open_engine
from memory.facts import FactMemory
from memory.facts_extract import Candidate, extract_rules
from memory.facts_jobs import FACTS_JOB, FactRecorder
from memory.facts_recall import FACTS_HEADER, FactRecall, LayeredRecall
from memory.jobs import JobQueue
from memory.store import ConversationStore
from memory.vectors import open_chroma


# -- rules ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("I live in Lisbon.", [("home", "Lisbon", "add")]),
    ("I moved from Lisbon to Porto last month.", [("home", "Porto", "add")]),
    ("My name is Ana Silva and I work at Acme Corp.", [("name", "Ana Silva", "add"),
                                                       ("employer", "Acme Corp", "add")]),
    ("I'm allergic to peanuts", [("allergy", "peanuts", "add")]),
    ("My favourite colour is blue", [("favourite colour", "blue", "add")]),
    ("I don't like sushi anymore", [("likes", "sushi", "retract")]),
    ("I no longer live in Porto", [("home", "Porto", "retract")]),
    ("forget where I live", [("home", "", "forget")]),
    ("Could you please forget that I like sushi?", [("likes", "sushi", "forget")]),
    ("please forget everything", [("*", "", "forget")]),
    ("Where do I live?", []),  # a question states nothing
    ("I forget where I put my keys", []),  # not a request to us
    ("I would like a coffee", []),
    ("My job is boring", []),  # no job title
])
def test_rules(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(c.key, c.value, c.op) for c in extract_rules(text)] == expected


# -- reconcile --------------------------------------------------------------------------
@pytest.fixture
def parts(database_url: str, tmp_path):  # type: ignore[no-untyped-def]
    engine = open_engine(database_url)
    store = ConversationStore(engine)
    memory = FactMemory(engine, open_chroma(tmp_path / "chroma"),
                        guards=GuardChain(default_pipeline()))
    yield store, memory
    engine.dispose()


def say(store: ConversationStore, text: str, user: str = "ana", session: str = "s1"):  # type: ignore[no-untyped-def]
    return store.add_message(user, session, "user", text)


def learn(store: ConversationStore, memory: FactMemory, text: str, user: str = "ana"):  # type: ignore[no-untyped-def]
    message = say(store, text, user)
    return memory.apply(user, extract_rules(text), source=message)


def test_add_noop_update_with_history(parts) -> None:  # type: ignore[no-untyped-def]
    store, memory = parts
    [added] = learn(store, memory, "I live in Lisbon.")
    assert added.op == "ADD" and added.fact.text == "The user lives in Lisbon."
    [again] = learn(store, memory, "Like I said, I live in Lisbon!")
    assert again.op == "NOOP" and again.fact.id == added.fact.id
    assert len(again.fact.source_ids) == 2  # the repeat is provenance too
    [moved] = learn(store, memory, "I moved from Lisbon to Porto.")
    assert moved.op == "UPDATE" and moved.fact.value == "Porto"
    [old] = moved.previous
    assert (old.id, old.status, old.superseded_by) == (added.fact.id, "superseded", moved.fact.id)
    assert old.valid_to == moved.fact.valid_from and moved.fact.supersedes == old.id
    assert [f.value for f in memory.facts("ana")] == ["Porto"]
    history = memory.facts("ana", include_history=True)
    assert [(f.value, f.status) for f in history] == [("Lisbon", "superseded"), ("Porto", "valid")]
    lisbon_sources = [m.content for m in memory.sources("ana", old.id)]
    assert lisbon_sources == ["I live in Lisbon.", "Like I said, I live in Lisbon!"]
    assert [m.content for m in memory.sources("ana", moved.fact.id)] == ["I moved from Lisbon to Porto."]
    # Search finds only the valid version.
    assert [f.value for f, _ in memory.search("ana", "Where does the user live?")] == ["Porto"]


def test_multi_valued_contradiction_retraction_and_forget(parts) -> None:  # type: ignore[no-untyped-def]
    store, memory = parts
    learn(store, memory, "I like sushi")
    learn(store, memory, "I love hiking")
    assert sorted(f.value for f in memory.facts("ana") if f.key == "likes") == ["hiking", "sushi"]
    [change] = learn(store, memory, "Honestly I hate sushi")
    assert change.op == "ADD" and change.fact.key == "dislikes"
    assert [(p.value, p.status) for p in change.previous] == [("sushi", "invalid")]
    [retract] = learn(store, memory, "I don't like hiking anymore")
    assert retract.op == "DELETE" and retract.previous[0].status == "invalid"
    learn(store, memory, "I'm allergic to peanuts")
    [gone] = learn(store, memory, "please forget my allergy")
    assert gone.op == "DELETE" and gone.previous[0].status == "forgotten"
    assert [f.key for f in memory.facts("ana")] == ["dislikes"]
    assert learn(store, memory, "forget that I like tennis") == []  # nothing to forget
    # history keeps every row
    assert len(memory.facts("ana", include_history=True)) == 4


def test_late_job_for_an_older_message_does_not_override(parts) -> None:  # type: ignore[no-untyped-def]
    store, memory = parts
    older = say(store, "I live in Lisbon")
    newer = say(store, "I live in Porto")
    memory.apply("ana", extract_rules(newer.content), source=newer)
    [late] = memory.apply("ana", extract_rules(older.content), source=older)
    assert late.fact.status == "superseded" and late.fact.valid_to == newer.created_at
    assert [f.value for f in memory.facts("ana")] == ["Porto"]


def test_memory_write_guard_redacts(parts) -> None:  # type: ignore[no-untyped-def]
    store, memory = parts
    [change] = learn(store, memory, "my work email is ana.silva@example.com")
    assert "example.com" not in change.fact.text and "[EMAIL]" in change.fact.text
    assert "example.com" not in change.fact.value


def test_cross_user_isolation(parts) -> None:  # type: ignore[no-untyped-def]
    store, memory = parts
    [mine] = learn(store, memory, "I live in Lisbon", user="ana")
    learn(store, memory, "I live in Oslo", user="bob")
    fact_id = mine.fact.id
    assert [f.value for f in memory.facts("bob")] == ["Oslo"]
    for call in (lambda: memory.get("bob", fact_id), lambda: memory.sources("bob", fact_id),
                 lambda: memory.edit("bob", fact_id, "The user lives in Rome."),
                 lambda: memory.forget_ids("bob", [fact_id], "x")):
        with pytest.raises(FactNotFound):
            call()
    assert [f.value for f, _ in memory.search("bob", "the user lives in Lisbon")] == ["Oslo"]
    block = FactRecall(memory).recall("bob", "where do I live", token_budget=500)
    assert "Oslo" in block.text and "Lisbon" not in block.text
    assert memory.get("ana", fact_id).status == "valid"


def test_recall_budget_and_order(parts) -> None:  # type: ignore[no-untyped-def]
    store, memory = parts
    for text in ("I live in Porto", "I work at Acme", "I like climbing", "I'm allergic to cats",
                 "My favourite book is Dune"):
        learn(store, memory, text)

    class Turns:
        def recall(self, user_id, query, *, token_budget, exclude=(), count_tokens=len):  # type: ignore[no-untyped-def]
            from memory.recall import Recalled
            text = "Relevant memories:\n- [msg-1 | 1 May 2026] User: hello there"
            return Recalled(text if count_tokens(text) <= token_budget else "", [1] if text else [])

    count = lambda text: len(text.split())
    layered = LayeredRecall(FactRecall(memory), Turns(), facts_share=0.6)
    full = layered.recall("ana", "what do I like", token_budget=400, count_tokens=count)
    assert full.text.index(FACTS_HEADER) < full.text.index("Relevant memories:")
    assert full.text.count("[fact-") == 5 and count(full.text) <= 400
    for budget in (10, 25, 40):
        tight = layered.recall("ana", "what do I like", token_budget=budget, count_tokens=count)
        assert count(tight.text) <= budget
    assert "since" in full.text and "msg-" in full.text  # dated and sourced


# -- through the assistant --------------------------------------------------------------
def is_extraction(messages: Sequence[BaseMessage]) -> bool:
    return "JSON schema" in str(messages[0].content)


def system_text(model: ScriptedModel) -> str:
    return str(model.requests[-1].messages[0].content)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"job_backoff_initial_s": 0.05, "job_backoff_max_s": 0.2,
                                       "job_poll_s": 0.05})


def test_move_then_forget_through_chat(fast: Settings) -> None:
    model = ScriptedModel(fn=lambda messages: "Noted.")
    with Assistant(fast, model=model) as bot:
        bot.chat("I live in Lisbon.", session_id="a")
        bot.flush()
        bot.chat("I moved from Lisbon to Porto.", session_id="a")
        bot.flush()
        history = bot.facts("default", include_history=True)
        assert [(f.value, f.status) for f in history] == [("Lisbon", "superseded"), ("Porto", "valid")]
        lisbon, porto = history
        assert lisbon.valid_to is not None and lisbon.superseded_by == porto.id
        assert [m.content for m in bot.fact_sources("default", lisbon.id)] == ["I live in Lisbon."]
        assert [m.content for m in bot.fact_sources("default", porto.id)] == ["I moved from Lisbon to Porto."]
        # The next prompt (another session) lists the current fact, not the old one.
        bot.chat("What should I do this weekend?", session_id="b")
        system = system_text(model)
        assert f"[fact-{porto.id} |" in system and "The user lives in Porto." in system
        assert "The user lives in Lisbon." not in system
        assert "User: I moved from Lisbon to Porto." in system  # episodic memory, for now
        bot.chat("Please forget where I live.", session_id="a")
        bot.flush()
        assert bot.facts("default") == []
        assert {f.status for f in bot.facts("default", include_history=True)} == {"forgotten"}
        bot.chat("Where do I live?", session_id="c")
        system = system_text(model)
        assert "Porto" not in system and "Lisbon" not in system  # facts and their turns
        assert "User: Please forget where I live." in system  # the rest of memory still works
        assert bot.forget("default", "where I live").forgotten == []


def test_a_fact_said_in_a_failed_turn_is_still_learned(fast: Settings) -> None:
    model = ScriptedModel().enqueue(ProviderUnavailable("down"))
    with Assistant(fast, model=model) as bot:
        reply = bot.chat("I'm allergic to peanuts.", session_id="a")
        bot.flush()
        assert reply.status == "error"
        assert [(f.key, f.value) for f in bot.facts("default")] == [("allergy", "peanuts")]


def test_people_api(fast: Settings) -> None:
    with Assistant(fast, model=ScriptedModel(fn=lambda m: "ok")) as bot:
        bot.chat("I work at Acme and I like chess", session_id="s", user_id="ana")
        bot.chat("I live in Oslo", session_id="t", user_id="bob")
        bot.flush()
        work = next(f for f in bot.facts("ana") if f.key == "employer")
        edited = bot.edit_fact("ana", work.id, "The user works at Acme Robotics.")
        assert edited.supersedes == work.id and edited.source_ids == work.source_ids
        assert bot.facts("ana", include_history=True)[0].status == "superseded"
        with pytest.raises(ValueError, match="superseded"):
            bot.edit_fact("ana", work.id, "again")
        with pytest.raises(ValueError):
            bot.edit_fact("ana", edited.id, "   ")
        # bob cannot touch ana's facts, and is told so without an error for forget
        with pytest.raises(FactNotFound):
            bot.fact_sources("bob", edited.id)
        with pytest.raises(FactNotFound):
            bot.edit_fact("bob", edited.id, "The user works at Evil Corp.")
        result = bot.forget("bob", edited.id)
        assert result.forgotten == [] and "no fact" in result.message
        assert bot.facts("ana")[-1].id == edited.id or edited.id in [f.id for f in bot.facts("ana")]
        unknown = bot.forget("ana", "my favourite football team")
        assert unknown.forgotten == [] and "nothing stored" in unknown.message
        chess = bot.forget("ana", "that I like chess")
        assert [f.value for f in chess.forgotten] == ["chess"]
        by_id = bot.forget("ana", str(edited.id))
        assert [f.id for f in by_id.forgotten] == [edited.id] and bot.facts("ana") == []
        assert [f.value for f in bot.facts("bob")] == ["Oslo"]
        with pytest.raises(ValueError):
            bot.forget("ana", "  ")


def test_invalid_extraction_is_logged_and_retried(fast: Settings, caplog) -> None:  # type: ignore[no-untyped-def]
    answers = iter(["this is not json", "{\"facts\": [{\"key\": 42}]}",  # attempt 1 + re-ask
                    json.dumps({"facts": [{"key": "hobby", "value": "chess", "op": "add"},
                                          {"key": "hobby", "value": "chess", "op": "add"},
                                          {"key": "home", "value": "Atlantis", "op": "add"},
                                          {"key": "Bruno", "value": "chess", "op": "add"},
                                          {"key": "hobby", "value": "", "op": "forget"}]})])

    def reply(messages: Sequence[BaseMessage]) -> str:
        return next(answers) if is_extraction(messages) else "Nice!"

    model = ScriptedModel(fn=reply)
    with caplog.at_level(logging.WARNING, logger="memory.jobs"), \
            Assistant(fast.model_copy(update={"facts_model": "chat"}), model=model) as bot:
        answer = bot.chat("On weekends I play chess with my brother", session_id="s")
        assert answer.status == "ok" and answer.text == "Nice!"  # the turn never waits or fails
        assert bot.worker.flush(30, include_delayed=True)
        [job] = bot.jobs.jobs(kind=FACTS_JOB)
        assert job.status == "done" and job.attempts == 2
        # The grounded model fact is kept once; "Atlantis" was never said, "Bruno" is no
        # attribute of the user, and the message asks to forget nothing: all dropped.
        assert [(f.key, f.value, f.extractor) for f in bot.facts("default")] == [("hobby", "chess", "model")]
    assert any("ExtractionFailed" in r.getMessage() for r in caplog.records)


def test_model_that_keeps_failing_leaves_the_rules_facts(fast: Settings) -> None:
    model = ScriptedModel(fn=lambda m: "{broken" if is_extraction(m) else "ok")
    with Assistant(fast.model_copy(update={"facts_model": "chat"}), model=model) as bot:
        bot.chat("I live in Tromso", session_id="s")
        assert bot.worker.flush(30, include_delayed=True)
        [job] = bot.jobs.jobs(kind=FACTS_JOB)
        assert (job.status, job.attempts) == ("done", 3)  # 2 tries with the model, then rules
        assert sum(is_extraction(r.messages) for r in model.requests) == 4  # each + 1 re-ask
        assert [f.value for f in bot.facts("default")] == ["Tromso"]


def test_provider_outage_during_extraction_waits_then_succeeds(fast: Settings) -> None:
    down = {"on": True}

    def reply(messages: Sequence[BaseMessage]) -> str | Exception:
        if not is_extraction(messages):
            return "Sure."
        if down["on"]:
            return ProviderUnavailable("extraction provider is down", provider="scripted")
        return json.dumps({"facts": [{"key": "pet", "value": "a cat named Miso", "op": "add"}]})

    settings = fast.model_copy(update={"facts_model": "chat", "job_backoff_initial_s": 30,
                                       "job_backoff_max_s": 60})
    with Assistant(settings, model=ScriptedModel(fn=reply)) as bot:
        bot.chat("We adopted a cat named Miso", session_id="s")
        bot.flush()  # returns: the job waits out its backoff instead of blocking
        [job] = bot.jobs.jobs(kind=FACTS_JOB)
        assert job.status == "queued" and job.attempts == 1
        assert job.run_after - job.created_at > timedelta(seconds=25)
        assert "ProviderUnavailable" in (job.last_error or "")
        down["on"] = False
        bot.jobs.retry_now()  # or wait for run_after
        assert bot.worker.flush(30)
        assert bot.jobs.get(job.id).status == "done"  # type: ignore[union-attr]
        assert [f.value for f in bot.facts("default")] == ["a cat named Miso"]


def test_facts_job_survives_restart(fast: Settings) -> None:
    # The first process runs no workers (an always-on one would poll and take the job).
    first = Assistant(fast.model_copy(update={"job_workers": False}),
                      model=ScriptedModel(fn=lambda m: "ok"))
    message = first.store.add_message("ana", "s", "user", "I am 41 years old")
    # Enqueued by another process (no listener here wakes this worker), then we stop.
    FactRecorder(JobQueue(first.jobs.engine)).submit([message])
    first.close()
    assert first.worker is not None and not first.worker.running
    assert first.facts("ana") == []
    second = Assistant(fast, model=ScriptedModel(fn=lambda m: "ok"))
    try:
        assert second.worker.running  # pending work started it at once
        second.flush()
        assert [(f.key, f.value) for f in second.facts("ana")] == [("age", "41")]
    finally:
        second.close()


def test_extraction_rules_only_with_injected_model(fast: Settings) -> None:
    model = ScriptedModel(fn=lambda m: "ok")
    with Assistant(fast, model=model) as bot:  # facts_model=auto + injected model: rules only
        bot.chat("I live in Bergen", session_id="s")
        bot.flush()
        assert [f.value for f in bot.facts("default")] == ["Bergen"]
        assert not any(is_extraction(r.messages) for r in model.requests)


def test_candidate_schema_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Candidate(key="", value="x")
    with pytest.raises(ValueError):
        Candidate(key="home", value="x", op="explode")  # type: ignore[arg-type]


@pytest.mark.slow
def test_real_local_model_extraction_is_grounded_or_retried(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SmolLM2-135M with the JSON grammar: whatever it says, only facts stated in the
    message are kept, and invalid output is an ExtractionFailed for the queue to retry."""
    from assistant.errors import ExtractionFailed
    from assistant.providers.local import LocalModel
    from memory.facts_jobs import FactExtractor

    engine = open_engine(f"sqlite:///{tmp_path / 'local.db'}")
    store = ConversationStore(engine)
    memory = FactMemory(engine, open_chroma(tmp_path / "chroma"))
    text = "I live in Lisbon and on weekends I play chess with my brother."
    message = store.add_message("ana", "s", "user", text)
    queue = JobQueue(engine)
    queue.enqueue(FACTS_JOB, {"message_id": message.id}, user_id="ana")
    [job] = queue.claim("w")
    extractor = FactExtractor(memory, lambda: LocalModel.from_settings(Settings(local_n_ctx=1024)),
                              extract=extract)
    try:
        extractor(job)
    except ExtractionFailed as exc:
        assert exc.attempts == 2  # first answer + one re-ask, then the queue takes over
    facts = memory.facts("ana")
    assert ("home", "Lisbon") in [(f.key, f.value) for f in facts]  # the rules never depend on it
    for fact in facts:
        assert fact.value.lower() in text.lower()  # nothing invented
    engine.dispose()


def test_deleting_a_session_forgets_the_facts_it_alone_supports(fast: Settings) -> None:
    model = ScriptedModel(fn=lambda m: "ok")
    with Assistant(fast, model=model) as bot:
        bot.chat("I work at Acme", session_id="old", user_id="ana")
        bot.chat("I like chess", session_id="old", user_id="ana")
        bot.chat("Chess again: I like chess", session_id="new", user_id="ana")
        bot.flush()
        assert bot.delete_session("old", user_id="ana") == 4
        assert [(f.key, f.value) for f in bot.facts("ana")] == [("likes", "chess")]
        gone = [f for f in bot.facts("ana", include_history=True) if f.status == "forgotten"]
        assert [(f.key, f.value, f.text) for f in gone] == [("employer", "", "")]  # erased
        assert gone[0].text_sha256 == hashlib.sha256(b"The user works at Acme.").hexdigest()
        bot.chat("Tell me about my job", session_id="new", user_id="ana")
        system = system_text(model)
        assert "The user likes chess." in system and "The user works at Acme." not in system


def test_concurrent_reconciles_of_one_user_leave_one_current_value(parts) -> None:  # type: ignore[no-untyped-def]
    """Two workers reconcile two moves of the same user at once: one valid home."""
    import threading

    store, memory = parts
    moves = [say(store, f"I live in {city}") for city in ("Lisbon", "Porto", "Braga", "Faro")]
    barrier = threading.Barrier(len(moves))
    errors: list[BaseException] = []

    def work(message) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            memory.apply("ana", extract_rules(message.content), source=message)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(m,)) for m in moves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [f.value for f in memory.facts("ana")] == ["Faro"]  # the newest message wins
    assert len(memory.facts("ana", include_history=True)) == 4


def test_auto_extraction_uses_the_chat_model_only_behind_a_remote_provider() -> None:
    """The embedded 135M model is not asked to extract (weak, and it would hold the lock
    the next chat turn needs); a remote-led chain is."""
    from types import SimpleNamespace

    from memory.facts_jobs import model_getter, remote_first

    built = []

    class Bot(SimpleNamespace):
        @property
        def model(self):  # type: ignore[no-untyped-def]
            built.append(1)
            return "the chat model"

    local = Bot(settings=Settings(providers="local"))
    remote = Bot(settings=Settings(providers="openai:gpt-4o-mini,local"))
    assert not remote_first(local.settings) and remote_first(remote.settings)
    assert model_getter(local, "auto", injected=False)() is None and not built
    assert model_getter(remote, "auto", injected=False)() == "the chat model"
    assert model_getter(remote, "auto", injected=True)() is None
    assert model_getter(local, "chat", injected=False)() == "the chat model"
    assert model_getter(remote, "rules", injected=False)() is None
