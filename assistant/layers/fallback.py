"""Fall back along an ordered list of models, while streaming.

A member that fails before its first text is skipped silently: the user saw nothing.
A member that fails mid-reply has shown text that the next member will not continue,
so we first yield a *restart* control chunk (``ModelChunk.restart``, ``discarded``,
``"provider"``, ``"reason"``) telling the orchestrator and UI to drop that text and
say why, then stream the next member from scratch. Every chunk names who produced it
in ``ModelChunk.provider``; the last chunk carries ``attempts`` for the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace

from langchain_core.messages import BaseMessage

from assistant.errors import (
    BadProviderRequest,
    BudgetExceeded,
    EgressBlocked,
    LastmileError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
)
from assistant.providers.base import ChatModel, ModelChunk, ModelLayer, ModelRequest

__all__ = ["DEFAULT_FALLBACK_ON", "FallbackModel"]

log = logging.getLogger(__name__)

#: Errors that move on to the next member. ``BadProviderRequest`` is included because a
#: request one model rejects (e.g. too long for its context) may suit a bigger one.
#: ``AuthenticationFailed`` is not: a wrong key must surface, not hide behind a fallback.
#: ``BudgetExceeded`` is: a spend cap refused a paid member, a free one may still answer.
DEFAULT_FALLBACK_ON: tuple[type[LastmileError], ...] = (
    ProviderUnavailable, RateLimited, StreamInterrupted, BadProviderRequest, BudgetExceeded)


class FallbackModel(ModelLayer):
    """Tries ``models`` in order; the first that completes a reply answers."""

    provider = "fallback"

    def __init__(self, models: Sequence[ChatModel], *,
                 fallback_on: tuple[type[LastmileError], ...] = DEFAULT_FALLBACK_ON) -> None:
        if not models:
            raise ValueError("FallbackModel needs at least one model")
        self.models = list(models)
        self.fallback_on = tuple(fallback_on)
        self.model = ",".join(m.label for m in self.models)

    def children(self) -> list[ChatModel]:
        return self.models

    @property
    def label(self) -> str:
        return f"fallback({self.model})"

    @property
    def context_window(self) -> int:  # type: ignore[override]  # base declares a plain attribute
        """The smallest member's: the context must fit whichever member ends up answering."""
        return min(m.context_window for m in self.models)

    def count_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Counted with the first member's tokenizer: it answers in the normal case, and
        the budget from the smallest window leaves slack for a fallback's tokenizer."""
        return self.models[0].count_tokens(messages)

    def check(self) -> str | None:
        hints = [f"{m.label}: {hint}" for m in self.models if (hint := m.check())]
        return "; ".join(hints) or None

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        attempts: list[tuple[str, str]] = []
        failures: list[tuple[str, LastmileError]] = []
        sent: list[str] = []
        for index, member in enumerate(self.models):
            sent = []
            held: ModelChunk | None = None  # a text-less chunk, held back in case it is the last
            iterator = iter(member.request(request))
            try:
                for chunk in iterator:
                    if held is not None:
                        yield held
                        held = None
                    chunk = replace(chunk, provider=chunk.provider or member.label)
                    if chunk.text:
                        sent.append(chunk.text)
                        yield chunk
                    else:
                        held = chunk
            except (ProviderError, BudgetExceeded, EgressBlocked) as exc:
                attempts.append((member.label, type(exc).__name__))
                if not isinstance(exc, self.fallback_on):
                    exc.attempts = list(attempts)
                    raise
                failures.append((member.label, exc))
                log.warning("%s failed (%s: %s)%s", member.label, type(exc).__name__, exc,
                            " mid-reply" if sent else "")
                if sent and index + 1 < len(self.models):
                    yield ModelChunk(restart=True, discarded="".join(sent),
                                     provider=self.models[index + 1].label,
                                     reason=f"{type(exc).__name__}: {exc}")
                continue
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            attempts.append((member.label, "ok"))
            last = held or ModelChunk(provider=member.label)
            yield replace(last, attempts=list(attempts))
            return
        raise self._all_failed(failures, attempts, partial=bool(sent)) from failures[-1][1]

    def _all_failed(self, failures: list[tuple[str, LastmileError]], attempts: list[tuple[str, str]],
                    *, partial: bool) -> LastmileError:
        """One error naming every member's failure (the caller chains the last one).

        When every member was refused by a budget, that (not an outage) is what the user
        is told.
        """
        detail = "; ".join(f"{label}: {type(exc).__name__}: {exc}" for label, exc in failures)
        if all(isinstance(exc, EgressBlocked) for _, exc in failures):
            failures[-1][1].attempts = list(attempts)
            return failures[-1][1]  # PII kept every member from being asked: say that
        if all(isinstance(exc, BudgetExceeded) for _, exc in failures):
            refused = BudgetExceeded(f"every provider refused by budget: {detail}",
                                     provider=self.label, scope=getattr(failures[-1][1], "scope", ""))
            refused.attempts = list(attempts)
            return refused
        error: LastmileError = ProviderUnavailable(
            f"all providers failed: {detail}", provider=self.label,
            # The last member's partial text stays on screen: say it was cut off.
            user_message=StreamInterrupted.user_message if partial else None)
        error.attempts = list(attempts)
        error.failures = list(failures)  # type: ignore[attr-defined]  # each member's error, kept for inspection
        return error
