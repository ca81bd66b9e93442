"""Wall-clock time per stage of a turn (guards, context, model, verification, storage).

Kept in the turn's ``GuardContext.notes["stages_ms"]`` and stored with the reply, so the
dashboard and replays can show where a slow turn spent its time without a tracer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from guardrails import GuardContext

__all__ = ["STAGES", "timed"]

STAGES = ("guards", "context", "model", "verification", "storage")


@contextmanager
def timed(ctx: GuardContext, stage: str) -> Iterator[None]:
    """Add the time spent inside the block to ``stage`` (stages may be entered twice)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        stages = ctx.notes.setdefault("stages_ms", {})
        stages[stage] = round(stages.get(stage, 0.0) + (time.perf_counter() - started) * 1000, 2)
