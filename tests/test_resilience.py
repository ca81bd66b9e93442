"""Retry, circuit breaker and fallback, as models wrapping models. Deterministic: no real
sleeping (``sleep=`` records waits) and a fake clock for the breaker."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from assistant import Assistant, ScriptedModel, ScriptedReply, Settings
from assistant.errors import (AuthenticationFailed, BadProviderRequest, CircuitOpen, ProviderUnavailable,
                              RateLimited, StreamInterrupted)
from assistant.providers.base import ModelChunk, ModelRequest
from assistant.layers.fallback import FallbackModel
from assistant.layers.resilience import BreakerModel, CircuitBreaker, RetryingModel, RetryPolicy

REQ = ModelRequest([HumanMessage(content="hi")])
NO_JITTER = RetryPolicy(jitter=False)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def collect(model, request: ModelRequest = REQ) -> list[ModelChunk]:  # type: ignore[no-untyped-def]
    return list(model.request(request))


def text(chunks: list[ModelChunk]) -> str:
    return "".join(c.text for c in chunks)


def down(msg: str = "down", provider: str = "primary") -> ProviderUnavailable:
    return ProviderUnavailable(msg, provider=provider)


def retrying(inner: ScriptedModel, policy: RetryPolicy = NO_JITTER) -> tuple[RetryingModel, list[float]]:
    waits: list[float] = []
    return RetryingModel(inner, policy, sleep=waits.append), waits


# retry ------------------------------------------------------------------------------
def test_retry_succeeds_after_transient_errors_with_exponential_backoff() -> None:
    inner = ScriptedModel([down(), RateLimited("slow down"), "ok now"], provider="primary")
    model, waits = retrying(inner)
    assert text(collect(model)) == "ok now"
    assert len(inner.requests) == 3 and waits == [0.5, 1.0]


def test_jittered_waits_stay_within_bounds() -> None:
    inner = ScriptedModel([down()] * 4 + ["ok"])
    model, waits = retrying(inner, RetryPolicy(attempts=5, initial_wait_s=0.5, max_wait_s=2.0))
    assert text(collect(model)) == "ok"
    assert len(waits) == 4 and all(0.5 <= w <= 2.0 for w in waits)


def test_retry_gives_up_after_attempts_and_reraises_the_last_error() -> None:
    inner = ScriptedModel([down("1"), down("2"), down("3"), "never"])
    model, waits = retrying(inner)
    with pytest.raises(ProviderUnavailable, match="^3$"):
        collect(model)
    assert len(inner.requests) == 3 and len(waits) == 2


@pytest.mark.parametrize("error", [AuthenticationFailed("bad key"), BadProviderRequest("too long")])
def test_no_retry_on_errors_that_will_repeat(error: Exception) -> None:
    inner = ScriptedModel([error, "never"])
    model, waits = retrying(inner)
    with pytest.raises(type(error)):
        collect(model)
    assert len(inner.requests) == 1 and waits == []


@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (0.1, 0.5), (8.0, 8.0)])
def test_retry_after_is_honoured(retry_after: float, expected: float) -> None:
    inner = ScriptedModel([RateLimited("429", retry_after=retry_after), "ok"])
    model, waits = retrying(inner)
    assert text(collect(model)) == "ok"
    assert waits == [expected] and waits[0] >= retry_after


def test_retry_after_beyond_max_wait_gives_up_at_once() -> None:
    inner = ScriptedModel([RateLimited("429", retry_after=60.0), "never"])
    model, waits = retrying(inner)
    with pytest.raises(RateLimited) as info:
        collect(model)
    assert info.value.retry_after == 60.0
    assert len(inner.requests) == 1 and waits == []


@pytest.mark.parametrize("error", [None, down("socket closed")])
def test_no_retry_once_text_has_streamed(error: ProviderUnavailable | None) -> None:
    inner = ScriptedModel([ScriptedReply("one two three", fail_after=1, error=error), "never"])
    model, waits = retrying(inner)
    seen: list[str] = []
    with pytest.raises(StreamInterrupted if error is None else ProviderUnavailable):
        for chunk in model.request(REQ):
            seen.append(chunk.text)
    assert seen == ["one "] and len(inner.requests) == 1 and waits == []


def test_retrying_model_is_transparent() -> None:
    inner = ScriptedModel(provider="openai", model="gpt-x", context_window=1234)
    model = RetryingModel(inner)
    assert (model.label, model.provider, model.context_window) == ("openai:gpt-x", "openai", 1234)
    assert model.count_tokens(REQ.messages) == inner.count_tokens(REQ.messages)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


# circuit breaker ----------------------------------------------------------------------
@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker_model(inner: ScriptedModel, clock: FakeClock) -> BreakerModel:
    return BreakerModel(inner, CircuitBreaker(inner.label, failure_threshold=3, reset_timeout_s=30,
                                              clock=clock))


def open_breaker(model: BreakerModel) -> None:
    for _ in range(model.breaker.failure_threshold):
        with pytest.raises(ProviderUnavailable):
            collect(model)


def test_breaker_opens_after_threshold_and_rejects_without_calling(clock: FakeClock) -> None:
    inner = ScriptedModel([down("a"), down("b")], provider="primary")
    model = breaker_model(inner, clock)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            collect(model)
    assert model.breaker.state == "closed"
    with pytest.raises(ProviderUnavailable):  # the empty queue is the third failure
        collect(model)
    assert model.breaker.state == "open" and len(inner.requests) == 3
    with pytest.raises(ProviderUnavailable, match="circuit open for primary") as info:
        collect(model)
    assert isinstance(info.value, CircuitOpen) and info.value.provider == "primary"
    assert len(inner.requests) == 3
    snap = model.breaker.snapshot()
    assert snap["state"] == "open" and snap["consecutive_failures"] == 3
    assert snap["opened_at"] == clock.now and snap["total_failures"] == 3
    assert snap["total_successes"] == 0 and "ProviderUnavailable" in snap["last_error"]


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    model = breaker_model(ScriptedModel([down(), down(), "ok", down(), down(), "ok"]), clock)
    for _ in range(2):
        for expect_error in (True, True, False):
            if expect_error:
                with pytest.raises(ProviderUnavailable):
                    collect(model)
            else:
                collect(model)
    assert model.breaker.state == "closed"
    assert model.breaker.snapshot()["total_successes"] == 2


def test_half_open_probe_success_closes(clock: FakeClock) -> None:
    inner = ScriptedModel(provider="primary")
    model = breaker_model(inner, clock)
    open_breaker(model)
    clock.advance(29.9)
    assert model.breaker.state == "open"
    clock.advance(0.1)
    assert model.breaker.state == "half_open"
    inner.enqueue("back again")
    assert text(collect(model)) == "back again"
    snap = model.breaker.snapshot()
    assert snap["state"] == "closed" and snap["consecutive_failures"] == 0 and snap["opened_at"] is None


def test_half_open_probe_failure_reopens_and_restarts_the_timer(clock: FakeClock) -> None:
    inner = ScriptedModel(provider="primary")
    model = breaker_model(inner, clock)
    open_breaker(model)
    clock.advance(30)
    with pytest.raises(ProviderUnavailable, match="no reply queued"):  # the probe reached it
        collect(model)
    assert model.breaker.state == "open" and model.breaker.snapshot()["opened_at"] == clock.now
    assert len(inner.requests) == 4
    clock.advance(29)
    assert model.breaker.state == "open"
    clock.advance(1)
    assert model.breaker.state == "half_open"


def test_a_half_open_probe_is_tried_once_not_retried(clock: FakeClock) -> None:
    inner = ScriptedModel(provider="primary")
    waits: list[float] = []
    model = BreakerModel(RetryingModel(inner, RetryPolicy(attempts=3, jitter=False), sleep=waits.append),
                         CircuitBreaker("primary", failure_threshold=1, reset_timeout_s=30, clock=clock))
    inner.enqueue(down(), down(), down())
    with pytest.raises(ProviderUnavailable):  # closed: the full retry budget
        collect(model)
    assert len(inner.requests) == 3 and len(waits) == 2 and model.breaker.state == "open"
    clock.advance(30)
    inner.enqueue(down(), "would have answered on a retry")
    with pytest.raises(ProviderUnavailable):  # half-open: one attempt, then open again
        collect(model)
    assert len(inner.requests) == 4 and len(waits) == 2 and model.breaker.state == "open"
    clock.advance(30)
    assert text(collect(model)) == "would have answered on a retry"
    assert model.breaker.state == "closed"


def test_only_one_probe_while_half_open(clock: FakeClock) -> None:
    inner = ScriptedModel(provider="primary")
    model = breaker_model(inner, clock)
    open_breaker(model)
    clock.advance(30)
    inner.enqueue("probe reply")
    probe = model.request(REQ)
    assert next(probe).text == "probe "  # the probe is in flight, holding its slot
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        collect(model)
    assert text(list(probe)) == "reply"
    assert model.breaker.state == "closed"
    inner.enqueue("normal")
    assert text(collect(model)) == "normal"


def test_only_one_probe_with_concurrent_threads(clock: FakeClock) -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow(messages):  # type: ignore[no-untyped-def]
        calls.append(1)
        entered.set()
        assert release.wait(5)
        return "probe ok"

    inner = ScriptedModel(fn=slow, provider="primary")
    model = breaker_model(inner, clock)
    for _ in range(3):
        inner.enqueue(down())
    open_breaker(model)
    clock.advance(30)
    results: list[str] = []
    probe = threading.Thread(target=lambda: results.append(text(collect(model))))
    probe.start()
    assert entered.wait(5)
    rejected: list[Exception] = []

    def other() -> None:
        try:
            collect(model)
        except ProviderUnavailable as exc:
            rejected.append(exc)

    others = [threading.Thread(target=other) for _ in range(4)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(5)
    release.set()
    probe.join(5)
    assert results == ["probe ok"] and len(calls) == 1
    assert len(rejected) == 4 and all(isinstance(e, CircuitOpen) for e in rejected)
    assert model.breaker.state == "closed"


def test_an_abandoned_probe_frees_the_slot(clock: FakeClock) -> None:
    inner = ScriptedModel(provider="primary")
    model = breaker_model(inner, clock)
    open_breaker(model)
    clock.advance(30)
    inner.enqueue("first try", "second try")
    probe = model.request(REQ)
    next(probe)
    probe.close()  # the user pressed stop: no verdict on the provider's health
    assert model.breaker.state == "half_open"
    assert text(collect(model)) == "second try"
    assert model.breaker.state == "closed"


def test_bad_requests_do_not_trip_the_breaker(clock: FakeClock) -> None:
    model = breaker_model(ScriptedModel([BadProviderRequest("too long")] * 5), clock)
    for _ in range(5):
        with pytest.raises(BadProviderRequest):
            collect(model)
    snap = model.breaker.snapshot()
    assert snap["state"] == "closed" and snap["consecutive_failures"] == 0
    assert snap["total_failures"] == 0


# fallback -------------------------------------------------------------------------------
def providers_of(chunks: list[ModelChunk]) -> set[str]:
    return {c.provider for c in chunks}


def test_fallback_skips_a_member_that_fails_before_its_first_token() -> None:
    primary = ScriptedModel([down()], provider="primary")
    local = ScriptedModel(["from the local model"], provider="local")
    chunks = collect(FallbackModel([primary, local]))
    assert text(chunks) == "from the local model"
    assert providers_of(chunks) == {"local"}
    assert not any(c.restart for c in chunks)
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is not None
    assert chunks[-1].attempts == [("primary", "ProviderUnavailable"), ("local", "ok")]


@pytest.mark.parametrize("error", [None, down("connection reset")])
def test_fallback_restarts_on_the_next_member_after_a_mid_stream_failure(
        error: ProviderUnavailable | None) -> None:
    primary = ScriptedModel([ScriptedReply("half an answer", fail_after=2, error=error)],
                            provider="primary")
    local = ScriptedModel(["the whole answer"], provider="local")
    chunks = collect(FallbackModel([primary, local]))
    restart = [i for i, c in enumerate(chunks) if c.restart]
    assert restart == [2]
    before, control, after = chunks[:2], chunks[2], chunks[3:]
    assert text(before) == "half an " and providers_of(before) == {"primary"}
    assert control.text == "" and control.discarded == "half an "
    assert control.provider == "local"
    assert control.reason.startswith("StreamInterrupted: " if error is None
                                              else "ProviderUnavailable: connection reset")
    assert text(after) == "the whole answer" and providers_of(after) == {"local"}
    kind = "StreamInterrupted" if error is None else "ProviderUnavailable"
    assert chunks[-1].attempts == [("primary", kind), ("local", "ok")]


def test_one_restart_names_the_member_after_the_broken_one_later_chunks_name_who_answered() -> None:
    a = ScriptedModel([ScriptedReply("partial text", fail_after=1)], provider="a")
    b = ScriptedModel([down(provider="b")], provider="b")
    c = ScriptedModel(["c answers"], provider="c")
    chunks = collect(FallbackModel([a, b, c]))
    controls = [ch for ch in chunks if ch.restart]
    assert len(controls) == 1 and controls[0].discarded == "partial "
    answer = chunks[chunks.index(controls[0]) + 1:]
    assert text(answer) == "c answers" and providers_of(answer) == {"c"}
    assert chunks[-1].attempts == [("a", "StreamInterrupted"), ("b", "ProviderUnavailable"),
                                            ("c", "ok")]


def test_a_bad_request_falls_back_to_a_bigger_model() -> None:
    small = ScriptedModel([BadProviderRequest("context length exceeded")], provider="small")
    big = ScriptedModel(["fits here"], provider="big")
    assert text(collect(FallbackModel([small, big]))) == "fits here"


def test_an_authentication_error_surfaces_immediately() -> None:
    primary = ScriptedModel([AuthenticationFailed("bad key", provider="primary")], provider="primary")
    local = ScriptedModel(["never"], provider="local")
    with pytest.raises(AuthenticationFailed, match="bad key") as info:
        collect(FallbackModel([primary, local]))
    assert local.requests == []
    assert info.value.attempts == [("primary", "AuthenticationFailed")]


def test_fallback_on_is_configurable() -> None:
    primary = ScriptedModel([RateLimited("429")], provider="primary")
    local = ScriptedModel(["never"], provider="local")
    with pytest.raises(RateLimited):
        collect(FallbackModel([primary, local], fallback_on=(ProviderUnavailable,)))
    assert local.requests == []


def test_all_members_down_raises_one_error_naming_each() -> None:
    a = ScriptedModel([down("a is down")], provider="openai", model="gpt-x")
    b = ScriptedModel([RateLimited("b is busy", retry_after=5)], provider="anthropic")
    c = ScriptedModel([ScriptedReply("so far so", fail_after=2)], provider="local")
    model = FallbackModel([a, b, c])
    seen: list[ModelChunk] = []
    with pytest.raises(ProviderUnavailable) as info:
        for chunk in model.request(REQ):
            seen.append(chunk)
    message = str(info.value)
    assert message.startswith("all providers failed: ")
    for part in ("openai:gpt-x: ProviderUnavailable: a is down", "anthropic: RateLimited: b is busy",
                 "local: StreamInterrupted: scripted stream interrupted"):
        assert part in message
    assert info.value.provider == "fallback(openai:gpt-x,anthropic,local)"
    assert isinstance(info.value.__cause__, StreamInterrupted)
    assert info.value.attempts == [("openai:gpt-x", "ProviderUnavailable"),
                                   ("anthropic", "RateLimited"), ("local", "StreamInterrupted")]
    # The last member's partial text was shown and stays: no restart chunk, a "cut off" message.
    assert text(seen) == "so far " and not any(ch.restart for ch in seen)
    assert info.value.user_message == StreamInterrupted.user_message


def test_fallback_describes_itself() -> None:
    a = ScriptedModel(provider="openai", model="gpt-x", context_window=128_000)
    b = ScriptedModel(provider="local", context_window=2048)
    model = FallbackModel([a, b])
    assert model.label == "fallback(openai:gpt-x,local)" and model.provider == "fallback"
    assert model.context_window == 2048
    assert model.count_tokens(REQ.messages) == a.count_tokens(REQ.messages)
    with pytest.raises(ValueError):
        FallbackModel([])


def test_fallback_streams_through_the_async_bridge() -> None:
    primary = ScriptedModel([ScriptedReply("half an answer", fail_after=1)], provider="primary")
    local = ScriptedModel(["async works"], provider="local")

    async def run() -> list[ModelChunk]:
        return [chunk async for chunk in FallbackModel([primary, local]).arequest(REQ)]

    chunks = asyncio.run(run())
    assert [c.restart for c in chunks].count(True) == 1
    assert text(chunks) == "half async works"
    assert chunks[-1].attempts == [("primary", "StreamInterrupted"), ("local", "ok")]


def test_closing_the_fallback_stream_closes_the_member(clock: FakeClock) -> None:
    inner = ScriptedModel(provider="primary")
    guarded = breaker_model(inner, clock)
    open_breaker(guarded)
    clock.advance(30)
    inner.enqueue("probe reply", "next reply")
    stream = FallbackModel([guarded, ScriptedModel(["local"], provider="local")]).request(REQ)
    next(stream)
    stream.close()
    assert guarded.breaker.acquire() == "probe"  # the abandoned probe released its slot


# composition ------------------------------------------------------------------------------
def test_breaker_over_retry_inside_fallback(clock: FakeClock) -> None:
    primary = ScriptedModel(provider="primary")  # nothing queued: every call fails
    local = ScriptedModel(fn=lambda messages: "local answers", provider="local")
    retry, waits = retrying(primary, RetryPolicy(attempts=2, jitter=False))
    breaker = CircuitBreaker("primary", failure_threshold=3, reset_timeout_s=30, clock=clock)
    model = FallbackModel([BreakerModel(retry, breaker), local])
    for turn in range(3):
        chunks = collect(model)
        assert text(chunks) == "local answers" and providers_of(chunks) == {"local"}
    assert len(primary.requests) == 6 and len(waits) == 3  # one breaker failure per turn
    assert breaker.state == "open"
    chunks = collect(model)  # straight to local: primary is not called, nobody sleeps
    assert text(chunks) == "local answers" and len(primary.requests) == 6 and len(waits) == 3
    assert chunks[-1].attempts == [("primary", "CircuitOpen"), ("local", "ok")]
    clock.advance(30)
    primary.enqueue("primary is back")
    chunks = collect(model)
    assert text(chunks) == "primary is back" and providers_of(chunks) == {"primary"}
    assert breaker.state == "closed" and len(primary.requests) == 7


def test_retry_does_not_retry_an_open_circuit(clock: FakeClock) -> None:
    inner = ScriptedModel(provider="primary")
    guarded = breaker_model(inner, clock)
    open_breaker(guarded)
    model, waits = retrying(guarded)  # the unusual order: retry outside the breaker
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        collect(model)
    assert waits == []


# end to end through the orchestrator -------------------------------------------------------
def make_bot(tmp_path: Path, model: FallbackModel) -> Assistant:
    settings = Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path / 'x.db'}",
                        index_turns=False)
    return Assistant(settings, model=model)


def test_assistant_reports_the_member_that_answered(tmp_path: Path) -> None:
    primary = ScriptedModel([down()], provider="primary")
    local = ScriptedModel(["hello from local"], provider="local")
    with make_bot(tmp_path, FallbackModel([primary, local])) as bot:
        reply = bot.chat("hello?", session_id="s")
        assert reply.ok and reply.provider == "local" and reply.text == "hello from local"
        history = bot.history("s")
    assert [(m.role, m.content) for m in history] == [("user", "hello?"),
                                                      ("assistant", "hello from local")]
    assert history[1].provider == "local"


def test_assistant_discards_the_partial_text_of_a_restart(tmp_path: Path) -> None:
    # Relies on the orchestrator handling ModelChunk.restart (clears the parts collected so far).
    from assistant.reply import Restart

    primary = ScriptedModel([ScriptedReply("half an answer", fail_after=2)], provider="primary")
    local = ScriptedModel(["the whole answer"], provider="local")
    with make_bot(tmp_path, FallbackModel([primary, local])) as bot:
        stream = bot.stream("question", session_id="s")
        chunks = list(stream)
        reply = stream.reply
        history = bot.history("s")
    assert reply is not None and reply.ok
    assert reply.text == "the whole answer" and reply.provider == "local"
    restarts = [c for c in chunks if isinstance(c, Restart)]
    assert len(restarts) == 1 and restarts[0].discarded == "half an "
    assert restarts[0].provider == "local" and restarts[0].reason.startswith("StreamInterrupted")
    assert [(m.role, m.content) for m in history] == [("user", "question"),
                                                      ("assistant", "the whole answer")]
