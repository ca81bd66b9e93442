"""The openai and anthropic providers, through the REAL SDKs, against a loopback server
that misbehaves on cue (``assistant.testing.faultserver``). Nothing here patches an SDK: every
failure is a real HTTP failure the SDK has to survive and we have to translate."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from assistant import Assistant, Settings
from assistant.errors import (
    AuthenticationFailed,
    BadProviderRequest,
    ConfigurationError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
    UnknownProvider,
)
from assistant.testing import NONSENSE_SHAPES, Fault, FaultServer
from assistant.providers import (
    ChatModel,
    ModelChunk,
    ModelRequest,
    Usage,
    build_provider,
)
from assistant.providers.anthropic import AnthropicModel
from assistant.providers.openai import OpenAIModel

READ_TIMEOUT = 0.5
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


@pytest.fixture
def fs() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def make(kind: str, fs: FaultServer) -> ChatModel:
    if kind == "openai":
        return OpenAIModel("test-model", api_key="sk-test", base_url=fs.url + "/v1",
                           connect_timeout_s=1.0, read_timeout_s=READ_TIMEOUT)
    return AnthropicModel("test-model", api_key="sk-test", base_url=fs.url,
                          connect_timeout_s=1.0, read_timeout_s=READ_TIMEOUT)


@pytest.fixture(params=["openai", "anthropic"])
def model(request: pytest.FixtureRequest, fs: FaultServer) -> ChatModel:
    return make(request.param, fs)


def ask(text: str = "hello there", **kwargs: object) -> ModelRequest:
    return ModelRequest([SystemMessage("be brief"), HumanMessage(text)], **kwargs)  # type: ignore[arg-type]


def consume(model: ChatModel, request: ModelRequest | None = None) -> tuple[list[str], ModelChunk | None, Exception | None]:
    """Texts streamed, the last chunk, and the error that ended the stream (if any)."""
    texts: list[str] = []
    last: ModelChunk | None = None
    try:
        for chunk in model.request(request or ask()):
            if chunk.text:
                texts.append(chunk.text)
            last = chunk
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return texts, last, exc
    return texts, last, None


def test_streams_the_reply_with_the_usage_the_server_claimed(model: ChatModel, fs: FaultServer) -> None:
    fs.enqueue(Fault.ok("hello from the server", prompt_tokens=17, completion_tokens=4))
    texts, last, error = consume(model)
    assert error is None
    assert texts == ["hello ", "from ", "the ", "server"]  # really streamed, delta by delta
    assert last is not None and last.usage == Usage(17, 4) and last.finish_reason == "stop"
    assert len(fs.requests) == 1 and fs.requests[0].headers["authorization"] == "Bearer sk-test"


def test_default_echo_reply_and_its_claimed_usage(model: ChatModel, fs: FaultServer) -> None:
    texts, last, error = consume(model, ask("ping"))
    assert error is None and "".join(texts) == "echo: ping"
    assert last is not None and last.usage == Usage(*fs.requests[0].usage)  # type: ignore[misc]


@pytest.mark.parametrize("fault,expected", [
    (Fault.error(500), ProviderUnavailable),
    (Fault.error(502), ProviderUnavailable),
    (Fault.overloaded(), ProviderUnavailable),  # OpenAI 503, Anthropic 529
    (Fault.refuse(), ProviderUnavailable),
    (Fault.malformed(), ProviderUnavailable),
    (Fault.malformed("text/html"), ProviderUnavailable),
    (Fault.empty_choices(), ProviderUnavailable),
    (Fault.error(401, "invalid x-api-key"), AuthenticationFailed),
    (Fault.error(403, "forbidden"), AuthenticationFailed),
    (Fault.error(400, "bad request"), BadProviderRequest),
    (Fault.error(404, "no such model"), BadProviderRequest),
], ids=lambda v: (f"{v.kind}-{v.status}-{v.content_type}" if isinstance(v, Fault) else v.__name__))
def test_each_fault_maps_to_its_error_kind_after_exactly_one_request(
        model: ChatModel, fs: FaultServer, fault: Fault, expected: type[ProviderError]) -> None:
    fs.enqueue(fault)
    texts, _, error = consume(model)
    assert type(error) is expected, repr(error)
    assert error.provider == model.label and texts == []
    assert len(fs.requests) == 1  # the SDK did not retry behind our back


NONSENSE = [Fault.nonsense(shape, streamed=streamed) for shape in NONSENSE_SHAPES
            for streamed in (None, False)] + [Fault.empty_choices(streamed=False),
                                              Fault.ok("a whole reply", streamed=False)]
NONSENSE_IDS = [f"{f.kind}-{f.shape or 'reply'}-{'json' if f.streamed is False else 'sse'}" for f in NONSENSE]
#: What the error must say, so an operator can tell the failures apart.
NONSENSE_SAYS = {"wrong_type": "without text|non-text", "missing_fields": "finish reason|stop reason",
                 "not_an_object": "not a JSON object"}


@pytest.mark.parametrize("fault", NONSENSE, ids=NONSENSE_IDS)
def test_nonsense_from_the_provider_is_a_provider_failure(model: ChatModel, fs: FaultServer,
                                                           fault: Fault) -> None:
    """Valid JSON the API never sends, as SSE or as a whole JSON body where a stream was
    asked for (a server that ignores ``stream: true``): never a crash, never an empty
    "success", always ``ProviderUnavailable`` naming what was wrong."""
    fs.enqueue(fault)
    texts, _, error = consume(model)
    assert type(error) is ProviderUnavailable, repr(error)
    assert texts == [] and error.provider == model.label and len(fs.requests) == 1
    expected = ("not an event stream" if fault.streamed is False
                else NONSENSE_SAYS[fault.shape] if fault.kind == "nonsense" else "")
    assert re.search(expected, str(error)), str(error)


@pytest.mark.parametrize("fault", NONSENSE, ids=NONSENSE_IDS)
async def test_nonsense_is_a_provider_failure_on_the_async_path_too(model: ChatModel, fs: FaultServer,
                                                                     fault: Fault) -> None:
    fs.enqueue(fault)
    with pytest.raises(ProviderUnavailable):
        [chunk async for chunk in model.arequest(ask())]
    assert len(fs.requests) == 1


#: Settings that make calls of their own after a turn (fact extraction, summaries).
BACKGROUND_CALLS = ("facts_enabled", "summarize_sessions")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_nonsense_falls_back_and_the_turn_is_kept(tmp_path: Path, fs: FaultServer, kind: str) -> None:
    """Through the real chain: the remote's nonsense moves the turn on to the next
    provider; both messages are stored and the ledger names the failure."""
    keys = ({"openai_api_key": "sk-test", "openai_base_url": fs.url + "/v1"} if kind == "openai"
            else {"anthropic_api_key": "sk-test", "anthropic_base_url": fs.url})
    settings = Settings(data_dir=tmp_path, providers=f"{kind}:test-model,scripted", index_turns=False,
                        retry_attempts=1, breaker_failure_threshold=100, **keys,  # type: ignore[arg-type]
                        **{k: False for k in BACKGROUND_CALLS if k in Settings.model_fields})
    fs.enqueue(*NONSENSE)  # one per chat turn: no background job may take one
    with Assistant(settings) as assistant:
        replies = [assistant.chat(f"question {i}", session_id="s") for i in range(len(NONSENSE))]
        stored = assistant.history("s")
        assert assistant.ledger is not None
        failed = [row for row in assistant.ledger.calls()
                  if row["provider"] == f"{kind}:test-model" and row["purpose"] == "chat"]
    assert [(r.status, r.provider) for r in replies] == [("ok", "scripted")] * len(NONSENSE)
    assert [r.text for r in replies] == [f"(scripted) you said: question {i}" for i in range(len(NONSENSE))]
    assert [m.role for m in stored] == ["user", "assistant"] * len(NONSENSE)
    assert [(row["status"], row["error_kind"]) for row in failed] == [("error", "ProviderUnavailable")] * len(NONSENSE)


def test_rate_limit_carries_retry_after_from_the_header(model: ChatModel, fs: FaultServer) -> None:
    fs.enqueue(Fault.rate_limited(retry_after=2.5))
    _, _, error = consume(model)
    assert type(error) is RateLimited
    assert error.retry_after == 2.5  # type: ignore[attr-defined]
    assert len(fs.requests) == 1


def test_silent_server_fails_within_the_read_timeout(model: ChatModel, fs: FaultServer) -> None:
    fs.enqueue(Fault.hang(10))
    started = time.monotonic()
    _, _, error = consume(model)
    elapsed = time.monotonic() - started
    assert type(error) is ProviderUnavailable, repr(error)
    assert READ_TIMEOUT * 0.8 <= elapsed < READ_TIMEOUT + 1.5
    assert len(fs.requests) == 1


def test_slow_but_within_the_timeout_is_fine(model: ChatModel, fs: FaultServer) -> None:
    fs.enqueue(Fault.hang(READ_TIMEOUT / 5, text="worth the wait"))
    texts, _, error = consume(model)
    assert error is None and "".join(texts) == "worth the wait"


@pytest.mark.parametrize("fault", [Fault.cut_stream("one two three four five", after_chunks=2),
                                   Fault.hang(10, after_chunks=2, text="one two three four five"),
                                   Fault.overloaded(after_chunks=2)],
                         ids=["cut", "stalls", "error-event"])
def test_failure_mid_stream_keeps_the_partial_text(model: ChatModel, fs: FaultServer, fault: Fault) -> None:
    fs.enqueue(fault)
    texts, _, error = consume(model)
    assert texts == ["one ", "two "]
    assert type(error) is StreamInterrupted, repr(error)
    assert error.partial == "one two " and error.provider == model.label
    assert len(fs.requests) == 1


def test_stopped_server_is_unavailable_and_recovers_on_the_same_port(model: ChatModel, fs: FaultServer) -> None:
    port = fs.port
    fs.stop()
    started = time.monotonic()
    _, _, error = consume(model)
    assert type(error) is ProviderUnavailable and time.monotonic() - started < 1.0
    fs.start()
    assert fs.port == port
    texts, _, error = consume(model, ask("back?"))
    assert error is None and "".join(texts) == "echo: back?"


async def test_arequest_streams_natively(model: ChatModel, fs: FaultServer) -> None:
    fs.enqueue(Fault.ok("async hello", prompt_tokens=5, completion_tokens=2), Fault.rate_limited(3),
               Fault.cut_stream("a b c d", after_chunks=2))
    chunks = [chunk async for chunk in model.arequest(ask())]
    assert "".join(c.text for c in chunks) == "async hello" and chunks[-1].usage == Usage(5, 2)
    assert fs.requests[0].headers.get("x-stainless-async", "").startswith("async")  # not a thread
    with pytest.raises(RateLimited) as info:
        [chunk async for chunk in model.arequest(ask())]
    assert info.value.retry_after == 3  # type: ignore[attr-defined]
    with pytest.raises(StreamInterrupted) as cut:
        [chunk async for chunk in model.arequest(ask())]
    assert cut.value.partial == "a b " and len(fs.requests) == 3


def test_anthropic_gets_the_system_prompt_as_system(fs: FaultServer) -> None:
    texts, _, error = consume(make("anthropic", fs), ask("hi", temperature=1.5, stop=("END",)))
    body = fs.requests[0].body
    assert error is None and fs.requests[0].path == "/v1/messages"
    assert body["system"] == "be brief"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["stream"] is True and body["stop_sequences"] == ["END"] and "temperature" not in body


def test_openai_gets_the_schema_as_response_format(fs: FaultServer) -> None:
    consume(make("openai", fs), ask("hi", response_schema=SCHEMA, max_tokens=42))
    body = fs.requests[0].body
    assert fs.requests[0].path == "/v1/chat/completions"
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "reply", "schema": SCHEMA, "strict": False}}
    assert body["stream_options"] == {"include_usage": True} and body["max_tokens"] == 42
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_anthropic_schema_is_asked_for_and_the_reply_must_parse(fs: FaultServer) -> None:
    model = make("anthropic", fs)
    fs.enqueue(Fault.ok('```json\n{"answer": 42}\n```'), Fault.ok("the answer is 42"))
    texts, last, error = consume(model, ask("hi", response_schema=SCHEMA))
    assert error is None and texts == ['{"answer": 42}'] and last is not None and last.usage
    assert '"answer"' in fs.requests[0].body["system"] and "be brief" in fs.requests[0].body["system"]
    _, _, error = consume(model, ask("hi", response_schema=SCHEMA))
    assert type(error) is ProviderUnavailable


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_assistant_end_to_end_through_build_provider(tmp_path: Path, fs: FaultServer, kind: str) -> None:
    keys = ({"openai_api_key": "sk-test", "openai_base_url": fs.url + "/v1"} if kind == "openai"
            else {"anthropic_api_key": "sk-test", "anthropic_base_url": fs.url})
    settings = Settings(data_dir=tmp_path, providers=f"{kind}:test-model", index_turns=False,
                        provider_read_timeout_s=READ_TIMEOUT, retry_attempts=1,
                        **dict.fromkeys(BACKGROUND_CALLS, False), **keys)  # type: ignore[arg-type]
    fs.enqueue(Fault.ok("stored reply", prompt_tokens=30, completion_tokens=2), Fault.error(500))
    with Assistant(settings) as assistant:
        session = assistant.new_session().session_id
        reply = assistant.chat("hello", session_id=session)
        assert (reply.text, reply.provider, reply.status) == ("stored reply", f"{kind}:test-model", "ok")
        assert reply.usage == Usage(30, 2)
        failed = assistant.chat("again", session_id=session)
        assert failed.status == "error" and failed.provider == f"{kind}:test-model"
        stored = assistant.history(session)
    replies = [m for m in stored if m.role == "assistant"]
    assert [(m.status, m.provider) for m in replies] == [("ok", f"{kind}:test-model"),
                                                         ("error", f"{kind}:test-model")]
    assert (replies[0].content, replies[0].prompt_tokens, replies[0].completion_tokens) == ("stored reply", 30, 2)
    assert [m.content for m in stored if m.role == "user"] == ["hello", "again"]
    system = fs.requests[0].body.get("system") or fs.requests[0].body["messages"][0]["content"]
    assert system == settings.system_prompt


def test_build_provider_defaults_and_missing_keys() -> None:
    assert build_provider("openai", Settings(openai_api_key="k")).label == "openai:gpt-4o-mini"  # type: ignore[arg-type]
    assert build_provider("anthropic", Settings(anthropic_api_key="k")).label == "anthropic:claude-sonnet-4-5"  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        build_provider("openai:gpt-4o", Settings())
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        build_provider("anthropic", Settings())
    with pytest.raises(UnknownProvider, match="openai, anthropic"):
        build_provider("gemini", Settings())


def test_faultserver_non_streaming_wire_formats(fs: FaultServer) -> None:
    """The server is shipped for reuse; its non-streaming replies are well-formed too."""
    def post(path: str, body: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(fs.url + path, json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as response:
            return json.loads(response.read())

    messages = [{"role": "user", "content": "hi"}]
    oai = post("/v1/chat/completions", {"model": "m", "messages": messages})
    assert oai["choices"][0]["message"]["content"] == "echo: hi"  # type: ignore[index]
    assert (oai["usage"]["prompt_tokens"], oai["usage"]["completion_tokens"]) == fs.requests[0].usage  # type: ignore[index]
    ant = post("/v1/messages", {"model": "m", "messages": messages, "max_tokens": 5})
    assert ant["content"] == [{"type": "text", "text": "echo: hi"}] and ant["stop_reason"] == "end_turn"
    fs.enqueue(Fault.rate_limited(retry_after=7))
    with pytest.raises(urllib.error.HTTPError) as info:
        post("/v1/messages", {"model": "m", "messages": messages})
    assert info.value.code == 429 and info.value.headers["Retry-After"] == "7"
