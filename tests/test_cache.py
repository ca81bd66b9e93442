"""Reply caches: exact and semantic, per user, TTL, bypass, only clean replies, hit rates.

The model is a ``ScriptedModel`` (it counts the requests that reach it) or the real
`openai` SDK against the loopback fault server (which counts the HTTP requests); the
cache lives in real SQLite / PostgreSQL and real (embedded) Chroma.
"""

from __future__ import annotations

import json
import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from assistant import Assistant, Settings
from assistant.layers.cache import CacheModel, request_key, same_question
from assistant.errors import ProviderError, ProviderUnavailable
from assistant.testing import Fault, FaultServer
from assistant.providers import ModelRequest, ScriptedModel, ScriptedReply
from assistant.layers.fallback import FallbackModel
from memory.db import open_engine
from memory.response_cache import ResponseCache, cache_stats
from memory.vectors import open_chroma

SYSTEM = SystemMessage(content="You are helpful.")

#: Background model calls (fact extraction, summaries) and the sample document corpus
#: are other features; off here so the fault server counts only what these tests cause.
QUIET = {"facts_enabled": False, "summarize_sessions": False, "sample_corpus": False}


def _request(text: str, user: str = "alice", *, system: SystemMessage = SYSTEM, history=(),
             **kwargs) -> ModelRequest:
    meta = {"purpose": "chat", "user_id": user, "session_id": "s", **kwargs.pop("meta", {})}
    return ModelRequest([system, *history, HumanMessage(content=text)], metadata=meta, **kwargs)


def _run(model, request: ModelRequest) -> tuple[str, list]:
    chunks = list(model.request(request))
    return "".join(c.text for c in chunks), chunks


@pytest.fixture
def engine(database_url: str):
    engine = open_engine(database_url)
    yield engine
    engine.dispose()


def test_request_key_normalises_only_what_cannot_change_an_answer() -> None:
    base = request_key(_request("hello there"), "openai:m")
    assert request_key(_request("hello there  \r\n"), "openai:m") == base  # trailing space, CRLF
    changed = [
        request_key(_request("Hello there"), "openai:m"),  # case may matter
        request_key(_request("hello there"), "openai:other"),  # another model
        request_key(_request("hello there", temperature=0.9), "openai:m"),
        request_key(_request("hello there", max_tokens=17), "openai:m"),
        request_key(_request("hello there", system=SystemMessage(
            content="You are helpful.\n\nRelevant memories:\n- [msg-1] User: I live in Porto")), "openai:m"),
    ]
    assert all(key[0] != base[0] for key in changed)
    # The context fingerprint ignores only the latest user message.
    assert request_key(_request("something else"), "openai:m")[1] == base[1]
    assert changed[-1][1] != base[1]
    assert base[2] == "hello there"


@pytest.mark.parametrize(("new", "cached", "same"), [
    ("How many ounces in a pound?", "how many ounces are in a pound", True),
    ("What is the capital of France?", "what is the capital city of France", True),
    ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?", False),  # MiniLM: 0.99
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?", False),
    ("What's the weather like today?", "What's the weather like tomorrow?", False),
    ("what is my name", "what is your name", False),
    ("Is coffee good for you?", "Is coffee bad for you?", False),
    ("What is 2+3?", "What is 2+4?", False),
    ("Tell me a joke", "Tell me a long funny joke about cats", False),
])
def test_lexical_guard_on_semantic_hits(new: str, cached: str, same: bool) -> None:
    assert same_question(new, cached) is same


def test_exact_hit_streams_like_a_reply_and_is_per_user(engine) -> None:
    inner = ScriptedModel(fn=lambda m: f"answer to {m[-1].content}", provider="openai", model="m")
    model = CacheModel(inner, ResponseCache(engine, ttl_s=60))
    first, _ = _run(model, _request("what is lastmile?"))
    again, chunks = _run(model, _request("what is lastmile?  "))
    assert first == again == "answer to what is lastmile?"
    assert len(inner.requests) == 1  # the second never reached the model
    texts = [c for c in chunks if c.text]
    assert len(texts) > 1 and all(c.provider == "cache(openai:m)" for c in chunks)
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage.total_tokens == 0
    # Bob asks exactly the same: he gets his own call, never Alice's cached answer.
    _run(model, _request("what is lastmile?", user="bob"))
    assert len(inner.requests) == 2
    stats = cache_stats(engine)
    assert (stats["hits"], stats["misses"], stats["exact_hits"]) == (1, 2, 1)
    assert stats["hit_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert cache_stats(engine, user_id="bob")["hits"] == 0


def test_a_changed_context_is_a_miss(engine) -> None:
    inner = ScriptedModel(fn=lambda m: "an answer", provider="openai", model="m")
    model = CacheModel(inner, ResponseCache(engine, ttl_s=60))
    _run(model, _request("where do I live?"))
    with_memory = SystemMessage(content="You are helpful.\n\nRelevant memories:\n- User: I live in Porto")
    _run(model, _request("where do I live?", system=with_memory))
    _run(model, _request("where do I live?", history=[HumanMessage(content="hi"), AIMessage(content="hey")]))
    assert len(inner.requests) == 3


def test_ttl_expires_entries(engine) -> None:
    inner = ScriptedModel(fn=lambda m: "fresh", provider="openai", model="m")
    store = ResponseCache(engine, ttl_s=0.2)
    model = CacheModel(inner, store)
    _run(model, _request("q"))
    _run(model, _request("q"))
    assert len(inner.requests) == 1
    time.sleep(0.3)
    _run(model, _request("q"))
    assert len(inner.requests) == 2
    time.sleep(0.3)
    assert store.purge() == 1  # the one row (re-stored by the third call) has expired: swept


def test_bypass_and_non_chat_purposes_skip_the_cache(engine) -> None:
    inner = ScriptedModel(fn=lambda m: "a reply", provider="openai", model="m")
    model = CacheModel(inner, ResponseCache(engine, ttl_s=60))
    _run(model, _request("q"))
    _run(model, _request("q", meta={"cache": False}))
    _run(model, _request("q", meta={"purpose": "summary"}))
    _run(model, _request("q", meta={"user_id": None}))
    assert len(inner.requests) == 4
    assert cache_stats(engine)["bypassed"] == 1


@pytest.mark.parametrize("bad", [
    ProviderUnavailable("down", provider="openai:m"),  # an error
    ScriptedReply("one two three four", fail_after=2),  # cut off mid-stream
    ScriptedReply(" "),  # empty
    ScriptedReply("far too many words for the limit", ),  # finish_reason "length" (max_tokens=3)
])
def test_only_complete_successful_replies_are_cached(engine, bad) -> None:
    inner = ScriptedModel([bad], fn=lambda m: "good answer", provider="openai", model="m")
    model = CacheModel(inner, ResponseCache(engine, ttl_s=60))
    kwargs = {"max_tokens": 3} if isinstance(bad, ScriptedReply) and "limit" in bad.text else {}
    try:
        _run(model, _request("q", **kwargs))
    except ProviderError:
        pass
    _run(model, _request("q", **kwargs))
    assert len(inner.requests) == 2  # the bad reply was not served back


def test_restarted_and_fallback_answers_are_not_cached(engine) -> None:
    flaky = ScriptedModel([ScriptedReply("one two three", fail_after=1),
                           ProviderUnavailable("down", provider="openai:m")],
                          fn=lambda m: "primary", provider="openai", model="m")
    backup = ScriptedModel(fn=lambda m: "backup answer", provider="local")
    model = CacheModel(FallbackModel([flaky, backup]), ResponseCache(engine, ttl_s=60))
    text, chunks = _run(model, _request("q"))  # primary breaks mid-stream: restart on backup
    assert text.endswith("backup answer") and any(c.restart for c in chunks)
    assert _run(model, _request("q"))[0] == "backup answer"  # primary down: fallback answered
    assert _run(model, _request("q"))[0] == "primary"  # primary back: asked, not a stale backup
    assert _run(model, _request("q"))[0] == "primary"
    assert len(flaky.requests) == 3 and len(backup.requests) == 2  # the last one was a hit


def test_semantic_hits_need_same_user_context_and_question(engine, tmp_path) -> None:
    chroma = open_chroma(tmp_path / "chroma")
    inner = ScriptedModel(fn=lambda m: f"reply {len(m)}", provider="openai", model="m")
    model = CacheModel(inner, ResponseCache(engine, ttl_s=60, chroma=chroma), semantic=True,
                       threshold=0.9)
    _run(model, _request("How many ounces are in a pound?"))
    _, chunks = _run(model, _request("how many ounces in a pound"))
    assert len(inner.requests) == 1 and chunks[0].cached == "semantic"
    assert chunks[0].similarity >= 0.9
    for other in [_request("how many ounces in a pound", user="bob"),  # another user
                  _request("how many ounces in a pound",  # another context
                           system=SystemMessage(content="You are terse.")),
                  _request("How many grams are in a pound?"),  # another question
                  _request("How many ounces are not in a pound?")]:  # guard: negation
        _run(model, other)
    assert len(inner.requests) == 5
    stats = cache_stats(engine)
    assert stats["semantic_hits"] == 1 and stats["misses"] == 5


def test_semantic_entries_expire_and_clear(engine, tmp_path) -> None:
    chroma = open_chroma(tmp_path / "chroma")
    inner = ScriptedModel(fn=lambda m: "x", provider="openai", model="m")
    store = ResponseCache(engine, ttl_s=60, chroma=chroma)
    model = CacheModel(inner, store, semantic=True)
    _run(model, _request("what is the capital of France?"))
    assert store.collection.count() == 1
    assert store.purge(user_id="alice", expired_only=False) == 1
    assert store.collection.count() == 0
    _run(model, _request("what is the capital city of France?"))
    assert len(inner.requests) == 2


def test_assistant_with_the_openai_sdk_serves_hits_without_a_request(tmp_path, database_url,
                                                                     monkeypatch, capsys) -> None:
    with FaultServer() as fs:
        fs.enqueue(Fault.ok("Lisbon is the capital of Portugal.", prompt_tokens=20, completion_tokens=7))
        settings = Settings(data_dir=tmp_path / "d", database_url=database_url,
                            providers="openai:test-model", openai_api_key="sk-test",  # type: ignore[arg-type]
                            openai_base_url=fs.url + "/v1", cache_mode="exact", index_turns=False, **QUIET,
                            retry_attempts=1)
        with Assistant(settings) as bot:
            first = bot.chat("capital of Portugal?", session_id="s1", user_id="ann")
            second = bot.stream("capital of Portugal?", session_id="s2", user_id="ann")
            chunks = list(second)
            assert len(fs.requests) == 1  # the second turn never reached the server
            hit = second.reply
            other = bot.chat("capital of Portugal?", session_id="s3", user_id="ben")
            fresh = bot.chat("capital of Portugal?", session_id="s4", user_id="ann", cache=False)
            assert len(fs.requests) == 3  # ben's turn and the bypassed turn were real calls
            rows = bot.ledger.calls()
    assert first.provider == "openai:test-model" and first.usage.completion_tokens == 7
    assert hit.ok and hit.text == first.text and hit.provider == "cache(openai:test-model)"
    assert len([c for c in chunks if c]) > 1 and hit.usage.total_tokens == 0
    assert other.text == fresh.text == "echo: capital of Portugal?"
    assert len(rows) == 3 and {r["provider"] for r in rows} == {"openai:test-model"}
    # `lastmile cache stats` reads the same database.
    from assistant.cli import main

    monkeypatch.setenv("LASTMILE_DATABASE_URL", database_url)
    assert main(["cache", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["hits"], stats["misses"], stats["bypassed"]) == (1, 2, 1)
    assert stats["hit_rate"] == pytest.approx(1 / 3, abs=1e-4) and stats["saved_tokens"] == 27


def test_semantic_mode_through_the_assistant(tmp_path, database_url) -> None:
    with FaultServer() as fs:
        settings = Settings(data_dir=tmp_path / "d", database_url=database_url,
                            providers="openai:test-model", openai_api_key="sk-test",  # type: ignore[arg-type]
                            openai_base_url=fs.url + "/v1", cache_mode="semantic", index_turns=False,
                            retry_attempts=1, **QUIET)
        with Assistant(settings) as bot:
            first = bot.chat("What is the capital of France?", session_id="a", user_id="ann")
            reworded = bot.chat("What is the capital city of France?", session_id="b", user_id="ann")
            negated = bot.chat("What is not the capital city of France?", session_id="c", user_id="ann")
            stats = cache_stats(bot.store.engine)  # type: ignore[attr-defined]
    assert len(fs.requests) == 2  # the re-worded question was served from the cache
    assert reworded.text == first.text == "echo: What is the capital of France?"
    assert reworded.provider == "cache(openai:test-model)"
    assert negated.text == "echo: What is not the capital city of France?"
    assert (stats["semantic_hits"], stats["misses"]) == (1, 2)


def test_no_wrong_semantic_hit_on_the_labelled_pairs() -> None:
    """The default threshold plus the guard serve no pair of different meaning; without
    the guard the same threshold would (MiniLM alone cannot be trusted with this)."""
    from pathlib import Path

    import numpy as np

    from memory.minilm import get_encoder

    path = Path(__file__).parent / "data" / "semantic_cache_pairs.jsonl"
    pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    threshold = Settings().cache_semantic_threshold
    vectors = get_encoder().encode([t for p in pairs for t in (p["a"], p["b"])])
    close = [p for i, p in enumerate(pairs) if float(np.dot(vectors[2 * i], vectors[2 * i + 1])) >= threshold]
    served = [p for p in close if same_question(p["a"], p["b"])]
    assert [p for p in served if not p["same"]] == []
    assert [p for p in close if not p["same"]], "the set no longer tests the guard"
    assert sum(p["same"] for p in served) >= len([p for p in pairs if p["same"]]) // 2
