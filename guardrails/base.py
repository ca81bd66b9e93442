"""Guardrails are hook objects, not branches in the orchestrator.

A guard overrides any of four hooks; each gets the turn's ``GuardContext`` and returns
the (possibly rewritten) value, or raises ``InputRejected`` to stop the turn. The
orchestrator only ever calls a ``GuardChain``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeVar

from assistant.audit import audit
from assistant.errors import InputRejected
from assistant.turn import TurnState

__all__ = ["Guard", "GuardChain", "GuardContext"]

T = TypeVar("T")


#: What every hook receives: the turn's typed state (who, where to, what was found so
#: far). Guards record their findings in its fields for later hooks and the stored reply.
GuardContext = TurnState


class Guard:
    """Base hook object: every hook passes its value through unchanged."""

    name: str = "guard"

    def before_input(self, ctx: GuardContext, text: str) -> str:
        return text

    def after_retrieval(self, ctx: GuardContext, items: list[T]) -> list[T]:
        return items

    def after_model(self, ctx: GuardContext, text: str) -> str:
        return text

    def before_memory_write(self, ctx: GuardContext, item: T) -> T | None:
        """Return ``None`` to keep the item out of memory."""
        return item


class GuardChain(Guard):
    """Runs guards in order; the output of one hook is the input of the next."""

    name = "chain"

    def __init__(self, guards: Sequence[Guard] = ()) -> None:
        self.guards = list(guards)

    def before_input(self, ctx: GuardContext, text: str) -> str:
        """Each guard in turn, each timed; the timings (and a refusal, if any) go to the
        audit log as one ``input_guards`` event, and to ``ctx.guards_ms``."""
        timings = ctx.guards_ms
        refused: str | None = None
        try:
            for guard in self.guards:
                started = time.perf_counter()
                try:
                    text = guard.before_input(ctx, text)
                except InputRejected:
                    refused = guard.name
                    raise
                finally:
                    timings[guard.name] = round((time.perf_counter() - started) * 1000, 3)
        finally:
            audit("input_guards", user_id=ctx.user_id, session_id=ctx.session_id,
                  ms=timings, refused_by=refused)
        return text

    def after_retrieval(self, ctx: GuardContext, items: list[T]) -> list[T]:
        for guard in self.guards:
            items = guard.after_retrieval(ctx, items)
        return items

    def after_model(self, ctx: GuardContext, text: str) -> str:
        for guard in self.guards:
            text = guard.after_model(ctx, text)
        return text

    def before_memory_write(self, ctx: GuardContext, item: T) -> T | None:
        current: T | None = item
        for guard in self.guards:
            if current is None:
                return None
            current = guard.before_memory_write(ctx, current)
        return current
