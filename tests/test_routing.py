"""Tiered routing: simple turns to the cheap chain, complex ones (and unconvincing cheap
answers) to the strong chain — with ScriptedModels, and with the real `openai` SDK
against the loopback fault server, which records which model each request named.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from assistant import Assistant, Settings
from assistant.errors import ProviderUnavailable
from assistant.testing import Fault, FaultServer, RecordedRequest
from assistant.providers import ModelRequest, ScriptedModel, ScriptedReply
from assistant.layers.routing import RouterModel, classify, low_confidence

#: Background model calls (fact extraction, summaries) and the sample document corpus
#: are other features; off here so the fault server counts only what these tests cause.
QUIET = {"facts_enabled": False, "summarize_sessions": False, "sample_corpus": False}


def _request(text: str, **kwargs) -> ModelRequest:
    meta = {"purpose": "chat", "user_id": "u", **kwargs.pop("meta", {})}
    return ModelRequest([SystemMessage(content="sys"), HumanMessage(content=text)], metadata=meta,
                        **kwargs)


@pytest.mark.parametrize(("text", "tier", "reason"), [
    ("What is the capital of Peru?", "cheap", "simple"),
    ("thanks, that helps!", "cheap", "simple"),
    ("x" * 401, "strong", "long input"),
    ("Why does `def f(x): return x[0]` fail?", "strong", "code"),
    ("```\nprint('hi')\n```", "strong", "code"),
    ("Traceback (most recent call last): KeyError", "strong", "code"),
    ("What is 17 * 23?", "strong", "math"),
    ("solve for x in the equation", "strong", "math"),
    ("Who won? And when was it?", "strong", "multi-part"),
    ("Compare Rust and Go for a CLI tool", "strong", "multi-part"),
    ("Plan my week:\n- gym\n- groceries", "strong", "multi-part"),
])
def test_classify(text: str, tier: str, reason: str) -> None:
    got_tier, got_reason = classify(_request(text))
    assert got_tier == tier and got_reason.startswith(reason)


def test_classify_sends_non_chat_and_structured_requests_to_the_strong_chain() -> None:
    assert classify(_request("hi", meta={"purpose": "summary"}))[0] == "strong"
    assert classify(_request("hi", response_schema={"type": "object"}))[0] == "strong"
    assert classify(ModelRequest([HumanMessage(content="hi"), AIMessage(content="yo")]))[0] == "strong"


@pytest.mark.parametrize(("text", "finish", "why"), [
    ("Lima.", "stop", None),
    ("", "stop", "empty reply"),
    ("Lima is the capital and", "length", "cut off at the token limit"),
    ("I'm sorry, but I can't help with that.", "stop", "refusal"),
    ("As an AI, I have no opinions.", "stop", "refusal"),
    ("It might be Lima, but I'm not sure.", "stop", "hedging"),
    ("I don't know.", "stop", "hedging"),
    ("Sorry to hear that! Rest and fluids help.", "stop", "refusal"),  # conservative: escalates
])
def test_low_confidence(text: str, finish: str, why: str | None) -> None:
    assert low_confidence(text, finish) == why


def test_simple_turn_is_answered_by_the_cheap_chain() -> None:
    cheap = ScriptedModel(["Lima."], provider="openai", model="cheap")
    strong = ScriptedModel(provider="openai", model="strong")
    chunks = list(RouterModel(cheap, strong).request(_request("What is the capital of Peru?")))
    assert "".join(c.text for c in chunks) == "Lima." and not strong.requests
    assert all(c.route == "cheap" and c.provider == "openai:cheap" for c in chunks)


def test_complex_turn_goes_straight_to_the_strong_chain() -> None:
    cheap = ScriptedModel(provider="openai", model="cheap")
    strong = ScriptedModel(["391"], provider="openai", model="strong")
    chunks = list(RouterModel(cheap, strong).request(_request("What is 17 * 23?")))
    assert "".join(c.text for c in chunks) == "391" and not cheap.requests
    assert chunks[0].route_reason == "math"


@pytest.mark.parametrize("cheap_reply", [
    "I'm not sure, maybe Lima?",  # hedge inside the held-back opening: nothing shown
    "",  # empty
    ProviderUnavailable("cheap chain down"),  # failed
    ScriptedReply("Lima is the capital and largest city", fail_after=2),  # broke mid-reply
])
def test_unconvincing_cheap_answers_escalate_silently(cheap_reply) -> None:
    cheap = ScriptedModel([cheap_reply], provider="openai", model="cheap")
    strong = ScriptedModel(["Lima."], provider="openai", model="strong")
    chunks = list(RouterModel(cheap, strong).request(_request("What is the capital of Peru?")))
    assert "".join(c.text for c in chunks) == "Lima." and len(strong.requests) == 1
    assert not any(c.restart for c in chunks)  # the user saw no cheap text
    assert chunks[-1].route == "strong"
    assert chunks[-1].route_reason.startswith("escalated: ")


def test_a_late_hedge_or_cut_off_restarts_on_the_strong_chain() -> None:
    long_then_hedge = "Peru's capital " + "is a large coastal city with a long history " * 4 + \
                      "and I think it is Lima but I'm not sure."
    for reply, kwargs in [(long_then_hedge, {}), ("word " * 60, {"max_tokens": 50})]:
        cheap = ScriptedModel([reply], provider="openai", model="cheap")
        strong = ScriptedModel(["Lima."], provider="openai", model="strong")
        chunks = list(RouterModel(cheap, strong, hold_chars=40).request(
            _request("What is the capital of Peru?", **kwargs)))
        restart = next(i for i, c in enumerate(chunks) if c.restart)
        shown = "".join(c.text for c in chunks[:restart])
        assert shown and chunks[restart].discarded == shown
        assert "".join(c.text for c in chunks[restart + 1:]) == "Lima."


def test_route_setting_is_validated() -> None:
    with pytest.raises(ValidationError, match="unknown provider"):
        Settings(route_cheap="gemini:flash")
    assert Settings(route_cheap=" ").route_cheap is None
    assert Settings(route_cheap="openai:gpt-4o-mini, local").route_specs == ["openai:gpt-4o-mini", "local"]
    with pytest.raises(ValidationError):
        Settings(cache_mode="fuzzy")
    with pytest.raises(ValidationError):
        Settings(cache_semantic_threshold=0.5)  # a loose threshold serves wrong answers


def _by_model(request: RecordedRequest) -> Fault:
    model = request.body.get("model")
    last = request.body["messages"][-1]["content"]
    if model == "cheap-model" and "capital of Atlantis" in last:
        return Fault.ok("I don't know, I'm not sure that place exists.")
    return Fault.ok(f"{model} says hi", prompt_tokens=10, completion_tokens=4)


def test_routing_with_the_openai_sdk(tmp_path, database_url) -> None:
    with FaultServer(default=_by_model) as fs:
        settings = Settings(data_dir=tmp_path / "d", database_url=database_url,
                            providers="openai:strong-model", route_cheap="openai:cheap-model",
                            openai_api_key="sk-test", openai_base_url=fs.url + "/v1",  # type: ignore[arg-type]
                            index_turns=False, **QUIET, retry_attempts=1)
        with Assistant(settings) as bot:
            simple = bot.chat("hi there", session_id="s")
            hard = bot.chat("Explain why this fails: `x = [1, 2][5]`", session_id="s")
            escalated = bot.chat("What is the capital of Atlantis?", session_id="s")
            rows = bot.ledger.calls()
    assert [r.body["model"] for r in fs.requests] == ["cheap-model", "strong-model", "cheap-model",
                                                       "strong-model"]
    assert simple.text == "cheap-model says hi" and simple.provider == "openai:cheap-model"
    assert hard.text == "strong-model says hi" and hard.provider == "openai:strong-model"
    assert escalated.text == "strong-model says hi" and escalated.provider == "openai:strong-model"
    # Every call is in the ledger, the escalated cheap attempt included.
    assert [r["provider"] for r in rows] == ["openai:cheap-model", "openai:strong-model",
                                             "openai:cheap-model", "openai:strong-model"]
