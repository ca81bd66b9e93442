"""Wall-clock time per stage of a turn (guards, context, model, verification, storage).

Kept in the turn's ``TurnState.stages_ms`` and stored with the reply, so the
dashboard and replays can show where a slow turn spent its time without a tracer; the
same block is the stage's span when tracing is on (``assistant.telemetry``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from assistant import telemetry
from assistant.turn import TurnState

__all__ = ["STAGES", "timed"]

STAGES = ("guards", "context", "model", "verification", "storage")


@contextmanager
def timed(ctx: TurnState, stage: str) -> Iterator[None]:
    """Add the time spent inside the block to ``stage`` (stages may be entered twice),
    inside a span of that name under the turn's."""
    started = time.perf_counter()
    try:
        with telemetry.turn_trace(ctx).stage(stage):
            yield
    finally:
        stages = ctx.stages_ms
        stages[stage] = round(stages.get(stage, 0.0) + (time.perf_counter() - started) * 1000, 2)
