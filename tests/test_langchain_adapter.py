"""lastmile providers as langchain-core chat models, in real LCEL chains: with the
scripted model, with the real openai/anthropic SDKs against the fault server (fallback
while streaming included), and with the real local model (slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from assistant.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ProviderUnavailable,
    RateLimited,
    UnknownProvider,
)
from assistant.testing import Fault, FaultServer
from assistant.providers import ScriptedModel, ScriptedReply, Usage
from assistant.layers.fallback import FallbackModel
from assistant.providers.langchain import LastmileChatModel
from assistant.settings import Settings

PROMPT = ChatPromptTemplate.from_messages([("system", "Answer in {style}."), ("human", "{question}")])


@pytest.fixture
def fs() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def remote(fs: FaultServer, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, openai_api_key="sk-test", openai_base_url=fs.url + "/v1",  # type: ignore[arg-type]
                    anthropic_api_key="sk-test", anthropic_base_url=fs.url,  # type: ignore[arg-type]
                    provider_read_timeout_s=0.5, retry_attempts=1, **overrides)  # type: ignore[arg-type]


def test_prompt_model_parser_invoke_and_stream_with_the_scripted_model() -> None:
    scripted = ScriptedModel(["a short answer", "streamed word by word"])
    model = LastmileChatModel(chat_model=scripted, max_tokens=40, temperature=0.7, user_id="ann")
    chain = PROMPT | model | StrOutputParser()
    assert chain.invoke({"style": "haiku", "question": "why?"}) == "a short answer"
    assert list(chain.stream({"style": "prose", "question": "how?"})) == ["streamed ", "word ", "by ", "word", ""]
    first, second = scripted.requests
    assert [type(m) for m in first.messages] == [SystemMessage, HumanMessage]
    assert [m.content for m in first.messages] == ["Answer in haiku.", "why?"]
    assert second.messages[1].content == "how?"
    assert (first.max_tokens, first.temperature) == (40, 0.7)
    assert first.metadata == {"purpose": "langchain", "user_id": "ann"}


def test_invoke_carries_usage_finish_reason_and_who_answered() -> None:
    scripted = ScriptedModel(["one two three"])
    message = LastmileChatModel(chat_model=scripted).invoke([HumanMessage("count to three")])
    expected = scripted.count_tokens([HumanMessage("count to three")])
    assert message.content == "one two three"
    assert message.usage_metadata == {"input_tokens": expected, "output_tokens": 3, "total_tokens": expected + 3}
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["model_name"] == "scripted"
    # Stop words and per-call limits pass through to our request.
    LastmileChatModel(chat_model=scripted.enqueue("x")).invoke("hi", stop=["END"], max_tokens=5)
    assert scripted.requests[-1].stop == ("END",) and scripted.requests[-1].max_tokens == 5


def test_fallback_mid_stream_is_marked_in_the_stream_and_dropped_by_invoke() -> None:
    first = ScriptedModel(provider="first")
    second = ScriptedModel(provider="second")
    model = LastmileChatModel(chat_model=FallbackModel([first, second]))
    first.enqueue(ScriptedReply("lost words here", fail_after=2))
    second.enqueue("the real answer")
    chunks = list(model.stream("hi"))
    restart = [c for c in chunks if c.response_metadata.get("restart")]
    assert len(restart) == 1 and restart[0].response_metadata["discarded"] == "lost words "
    assert restart[0].response_metadata["provider"] == "second"
    after = chunks[chunks.index(restart[0]) + 1:]
    assert "".join(str(c.content) for c in after) == "the real answer"
    assert after[-1].chunk_position == "last" and after[-1].response_metadata["model_name"] == "second"

    first.enqueue(ScriptedReply("lost words here", fail_after=2))
    second.enqueue("the real answer")
    message = model.invoke("hi")
    assert message.content == "the real answer"
    assert message.response_metadata["restarts"] == 1 and message.response_metadata["model_name"] == "second"


async def test_async_invoke_and_stream_through_lcel() -> None:
    scripted = ScriptedModel(["async answer", "async stream here"])
    chain = PROMPT | LastmileChatModel(chat_model=scripted) | StrOutputParser()
    assert await chain.ainvoke({"style": "prose", "question": "a"}) == "async answer"
    assert [c async for c in chain.astream({"style": "prose", "question": "b"})] == [
        "async ", "stream ", "here", ""]


def test_tokens_are_counted_by_the_wrapped_model() -> None:
    scripted = ScriptedModel()
    messages = [SystemMessage("be brief"), HumanMessage("one two three")]
    assert LastmileChatModel(chat_model=scripted).get_num_tokens_from_messages(messages) == \
        scripted.count_tokens(messages) == 2 + 3 + 3 + 3


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_real_sdk_against_the_fault_server(fs: FaultServer, tmp_path: Path, kind: str) -> None:
    model = LastmileChatModel.from_spec(f"{kind}:test-model", remote(fs, tmp_path))
    chain = PROMPT | model | StrOutputParser()
    fs.enqueue(Fault.ok("hello from the wire", prompt_tokens=21, completion_tokens=4))
    assert chain.invoke({"style": "prose", "question": "hi"}) == "hello from the wire"
    streamed = list((PROMPT | model).stream({"style": "prose", "question": "say it"}))
    assert all(isinstance(c, AIMessageChunk) for c in streamed)
    assert "".join(str(c.content) for c in streamed) == "echo: say it"
    claimed = fs.requests[1].usage
    assert claimed is not None
    usage = [c.usage_metadata for c in streamed if c.usage_metadata]
    assert usage == [{"input_tokens": claimed[0], "output_tokens": claimed[1], "total_tokens": sum(claimed)}]
    assert [r.path for r in fs.requests] == [f"/v1/{'chat/completions' if kind == 'openai' else 'messages'}"] * 2


def test_fallback_while_streaming_with_the_real_sdk(fs: FaultServer, tmp_path: Path) -> None:
    """The openai SDK's stream is cut after two words; the chain restarts on `scripted`."""
    model = LastmileChatModel.from_spec("openai:test-model,scripted", remote(fs, tmp_path))
    fs.enqueue(Fault.cut_stream("one two three four", after_chunks=2))
    chunks = list(model.stream("tell me"))
    texts = [str(c.content) for c in chunks]
    marker = next(i for i, c in enumerate(chunks) if c.response_metadata.get("restart"))
    assert texts[:marker] == ["one ", "two "]
    assert "".join(texts[marker:]) == "(scripted) you said: tell me"
    assert chunks[marker].response_metadata["discarded"] == "one two "
    fs.enqueue(Fault.error(500))  # before the first token: a silent fallback
    message = model.invoke("again")
    assert message.content == "(scripted) you said: again" and message.response_metadata["restarts"] == 0


def test_calls_are_in_the_ledger_under_the_langchain_purpose(fs: FaultServer, tmp_path: Path) -> None:
    from memory.db import open_engine
    from memory.ledger import Ledger

    engine = open_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        ledger = Ledger(engine)
        model = LastmileChatModel.from_settings(remote(fs, tmp_path, providers="openai:test-model"),
                                                ledger=ledger, user_id="bob")
        fs.enqueue(Fault.ok("priced", prompt_tokens=100, completion_tokens=7))
        model.invoke("hi")
        rows = ledger.calls(user_id="bob")
    finally:
        engine.dispose()
    assert [(r["purpose"], r["provider"], r["prompt_tokens"], r["completion_tokens"], r["status"])
            for r in rows] == [("langchain", "openai:test-model", 100, 7, "ok")]


@pytest.mark.parametrize("fault,error", [(Fault.error(401, "bad key"), AuthenticationFailed),
                                         (Fault.rate_limited(30), RateLimited),
                                         (Fault.nonsense("wrong_type"), ProviderUnavailable)],
                         ids=["auth", "rate-limited", "nonsense"])
def test_errors_surface_as_our_error_types(fs: FaultServer, tmp_path: Path, fault: Fault,
                                           error: type[Exception]) -> None:
    model = LastmileChatModel.from_spec("openai:test-model", remote(fs, tmp_path))
    chain = PROMPT | model | StrOutputParser()
    fs.enqueue(fault, fault)
    with pytest.raises(error):
        chain.invoke({"style": "prose", "question": "hi"})
    with pytest.raises(error):
        list(chain.stream({"style": "prose", "question": "hi"}))


def test_every_provider_down_is_provider_unavailable(fs: FaultServer, tmp_path: Path) -> None:
    model = LastmileChatModel.from_spec("openai:a,anthropic:b", remote(fs, tmp_path))
    fs.stop()
    with pytest.raises(ProviderUnavailable, match="all providers failed"):
        model.invoke("anyone?")


def test_bad_specs_fail_with_our_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownProvider, match="gemini"):
        LastmileChatModel.from_spec("gemini:pro", Settings(data_dir=tmp_path))
    with pytest.raises(UnknownProvider):
        LastmileChatModel.from_spec(" , ", Settings(data_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        LastmileChatModel.from_spec("openai:gpt-4o-mini", Settings(data_dir=tmp_path))


@pytest.mark.slow
def test_the_real_local_model_in_a_chain(tmp_path: Path) -> None:
    model = LastmileChatModel.from_spec("local", Settings(data_dir=tmp_path, max_reply_tokens=8,
                                                          local_n_ctx=512))
    chain = PROMPT | model
    message = chain.invoke({"style": "one word", "question": "What colour is the sky?"})
    assert isinstance(message.content, str) and message.content.strip()
    assert message.response_metadata["model_name"].startswith("local:")
    usage = message.usage_metadata
    assert usage is not None and 0 < usage["output_tokens"] <= 8
    prompt_messages = PROMPT.invoke({"style": "one word", "question": "What colour is the sky?"}).to_messages()
    assert usage["input_tokens"] == model.get_num_tokens_from_messages(prompt_messages)
    streamed = list((chain | StrOutputParser()).stream({"style": "one word", "question": "Name a fruit."}))
    assert len([s for s in streamed if s]) >= 1


def test_usage_helper_round_trip() -> None:
    """The last chunk's usage becomes langchain's usage_metadata unchanged."""
    model = LastmileChatModel(chat_model=ScriptedModel(["x y"]))
    chunks = list(model.stream("hi"))
    assert chunks[-1].usage_metadata is not None
    assert Usage(chunks[-1].usage_metadata["input_tokens"], chunks[-1].usage_metadata["output_tokens"]) == \
        Usage(ScriptedModel().count_tokens([HumanMessage("hi")]), 2)
