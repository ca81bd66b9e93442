"""Resilience as models that wrap models: retry one provider, and stop calling a sick one.

``RetryingModel`` retries transient failures with backoff (tenacity), but only before
the first text arrives: once text streamed, re-asking the same provider would duplicate
it, so the failure goes up to ``FallbackModel``, which restarts elsewhere.
``BreakerModel`` keeps a ``CircuitBreaker`` per provider so a dead provider costs one
fast error per turn instead of a timeout per turn. Compose them as
``FallbackModel([BreakerModel(RetryingModel(remote)), local])``: the breaker counts one
failure per turn (after retries), and fallback moves on past an open circuit.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)

from assistant.errors import (
    BadProviderRequest,
    CircuitOpen,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest, ModelWrapper

__all__ = ["BreakerModel", "CircuitBreaker", "RetryPolicy", "RetryingModel", "close_quietly",
           "stream_closing"]

log = logging.getLogger(__name__)
#: Request metadata a half-open probe carries: the retry layer then makes one attempt.
PROBE = "breaker_probe"
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def close_quietly(iterator: object) -> None:
    """Close a stream we stop reading, so the provider frees its connection (or probe slot)."""
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def stream_closing(model: ChatModel, request: ModelRequest) -> Iterator[ModelChunk]:
    """``model``'s stream for ``request``, closed however the reader stops (a layer that
    answers from a fallback or cuts a stream short must not leak the inner one)."""
    iterator = iter(model.request(request))
    try:
        yield from iterator
    finally:
        close_quietly(iterator)


def __getattr__(name: str) -> Any:
    """``_Wrapper`` was the wrappers' private base; it is ``ModelWrapper`` now (public)."""
    if name == "_Wrapper":
        warnings.warn("assistant.resilience._Wrapper is deprecated; subclass "
                      "assistant.providers.base.ModelWrapper", DeprecationWarning, stacklevel=2)
        return ModelWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry one provider before letting fallback take over."""

    attempts: int = 3
    initial_wait_s: float = 0.5
    max_wait_s: float = 8.0
    jitter: bool = True
    retry_on: tuple[type[ProviderError], ...] = (ProviderUnavailable, RateLimited)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_wait_s < 0 or self.max_wait_s < 0:
            raise ValueError("RetryPolicy needs attempts >= 1 and non-negative waits")


class RetryingModel(ModelWrapper):
    """Retries transient failures of one model, only until its first text chunk."""

    def __init__(self, inner: ChatModel, policy: RetryPolicy | None = None, *,
                 sleep: Callable[[float], Any] = time.sleep) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        p = self.policy
        self._backoff = wait_exponential_jitter(multiplier=p.initial_wait_s, max=p.max_wait_s,
                                                jitter=p.initial_wait_s if p.jitter else 0)

    def _retryable(self, exc: BaseException) -> bool:
        # An open circuit answers instantly and will say the same thing next time.
        return isinstance(exc, self.policy.retry_on) and not isinstance(exc, CircuitOpen)

    def _wait(self, state: RetryCallState) -> float:
        wait = self._backoff(state)
        retry_after = _retry_after(state)
        if retry_after is not None:
            wait = max(wait, retry_after)  # the server knows better than our backoff
        return min(wait, self.policy.max_wait_s)

    def _server_says_too_long(self, state: RetryCallState) -> bool:
        # Waiting longer than max_wait_s stalls the user; give up so fallback moves on.
        retry_after = _retry_after(state)
        return retry_after is not None and retry_after > self.policy.max_wait_s

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (%s: %s); retry %d/%d in %.2fs", self.label, type(exc).__name__,
                    exc, state.attempt_number, self.policy.attempts - 1,
                    state.next_action.sleep if state.next_action else 0.0)

    def _open(self, request: ModelRequest) -> tuple[Iterator[ModelChunk], list[ModelChunk]]:
        """Start a stream and read up to its first text: the only part safe to repeat."""
        iterator = iter(self.inner.request(request))
        head: list[ModelChunk] = []
        try:
            for chunk in iterator:
                head.append(chunk)
                if chunk.text:
                    break
        except BaseException:
            close_quietly(iterator)
            raise
        return iterator, head

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        attempts = 1 if request.metadata.get(PROBE) else self.policy.attempts
        retrying = Retrying(  # one per call: a Retrying carries per-call state
            sleep=self._sleep, reraise=True, retry=retry_if_exception(self._retryable),
            # tenacity calls any callable stop; its annotation names only its own classes.
            stop=stop_any(stop_after_attempt(attempts), self._server_says_too_long),  # type: ignore[arg-type]
            wait=self._wait, before_sleep=self._before_sleep)
        iterator, head = retrying(self._open, request)
        try:
            yield from head
            yield from iterator  # after the first text, failures propagate as-is
        finally:
            close_quietly(iterator)


def _retry_after(state: RetryCallState) -> float | None:
    value = getattr(state.outcome.exception() if state.outcome else None, "retry_after", None)
    return float(value) if value is not None else None


class CircuitBreaker:
    """Per-provider health: closed (normal) → open (reject fast) → half_open (one probe).

    ``failure_threshold`` consecutive failures open it; after ``reset_timeout_s`` one
    probe call is let through; its success closes the circuit, its failure re-opens it
    (and restarts the timer). A ``BadProviderRequest`` is our fault, not the provider's,
    so it never counts. Thread-safe; ``clock`` is injectable for tests.
    """

    def __init__(self, name: str = "", *, failure_threshold: int = 3, reset_timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 ignore: tuple[type[ProviderError], ...] = (BadProviderRequest,)) -> None:
        if failure_threshold < 1 or reset_timeout_s < 0:
            raise ValueError("CircuitBreaker needs failure_threshold >= 1 and reset_timeout_s >= 0")
        self.name, self.failure_threshold, self.reset_timeout_s = name, failure_threshold, reset_timeout_s
        self.ignore, self._clock = ignore, clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = self._total_failures = self._total_successes = 0
        self._opened_at: float | None = None
        self._probing = False
        self._last_error: str | None = None

    def _refresh(self) -> None:  # lock held
        if self._state == OPEN and self._clock() - (self._opened_at or 0.0) >= self.reset_timeout_s:
            self._state, self._probing = HALF_OPEN, False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (open turns half_open once the timeout passed)."""
        with self._lock:
            self._refresh()
            return self._state

    def acquire(self) -> str | None:
        """May a call go ahead? ``"call"``, ``"probe"`` (the one half-open trial), or ``None``."""
        with self._lock:
            self._refresh()
            if self._state == CLOSED:
                return "call"
            if self._state == HALF_OPEN and not self._probing:
                self._probing = True
                return "probe"
            return None

    def counts(self, exc: BaseException) -> bool:
        """Whether this error says something about the provider's health."""
        return isinstance(exc, ProviderError) and not isinstance(exc, self.ignore)

    def record_success(self) -> None:
        with self._lock:
            self._total_successes += 1
            self._state, self._failures, self._opened_at, self._probing = CLOSED, 0, None, False

    def record_failure(self, exc: BaseException, *, probe: bool = False) -> None:
        if not self.counts(exc):
            self.release(probe=probe)
            return
        with self._lock:
            self._refresh()
            self._total_failures += 1
            self._failures += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            if self._state == HALF_OPEN or (self._state == CLOSED
                                            and self._failures >= self.failure_threshold):
                self._state, self._opened_at, self._probing = OPEN, self._clock(), False
                log.warning("circuit for %s opened after %d failures: %s", self.name or "?",
                            self._failures, self._last_error)

    def release(self, *, probe: bool = False) -> None:
        """A call ended with no verdict (cancelled, bad request, a bug): free the probe slot."""
        if probe:
            with self._lock:
                self._probing = False

    def snapshot(self) -> dict[str, Any]:
        """Plain data for a dashboard or ``doctor``."""
        with self._lock:
            self._refresh()
            return {"name": self.name, "state": self._state, "consecutive_failures": self._failures,
                    "opened_at": self._opened_at, "last_error": self._last_error,
                    "total_failures": self._total_failures, "total_successes": self._total_successes}


class BreakerModel(ModelWrapper):
    """Guards a model with a ``CircuitBreaker``: an open circuit fails fast, without a call."""

    def __init__(self, inner: ChatModel, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(inner)
        self.breaker = breaker or CircuitBreaker(inner.label)

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        permit = self.breaker.acquire()
        if permit is None:
            raise CircuitOpen(f"circuit open for {self.label}", provider=self.label)
        probe = permit == "probe"
        if probe:  # a half-open probe asks once: retrying a provider we think is down only stalls
            request = dataclasses.replace(request, metadata={**request.metadata, PROBE: True})
        iterator = iter(self.inner.request(request))
        try:
            yield from iterator
        except ProviderError as exc:
            self.breaker.record_failure(exc, probe=probe)
            raise
        except BaseException:  # the consumer stopped reading, or a bug: no verdict on health
            self.breaker.release(probe=probe)
            raise
        finally:
            close_quietly(iterator)
        self.breaker.record_success()
