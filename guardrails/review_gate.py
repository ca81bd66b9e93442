"""The guard that holds risky memory writes for a human: ``before_memory_write`` queues
them in ``memory.review.ReviewQueue`` instead of writing them.

It is a guard (it judges text with the injection and PII detectors), so it lives here;
the queue it fills is storage, so that stays in ``memory/`` (guardrails sit above memory).
"""

from __future__ import annotations

from typing import TypeVar

from guardrails.base import Guard, GuardContext
from guardrails.injection import scan
from guardrails.normalize import item_text
from guardrails.pii import detect
from memory.review import ReviewQueue

__all__ = ["ReviewGate"]

T = TypeVar("T")


class ReviewGate(Guard):
    """``before_memory_write``: hold risky items for review instead of writing them.

    Risky: text that scores as a prompt injection (it would be replayed into every later
    prompt) or carries sensitive identifiers (cards, IBANs, national ids, secrets).
    The item is queued as ``memory_write`` and ``None`` returned (not written now).
    """

    name = "review_gate"
    SENSITIVE = ("card", "iban", "national_id", "secret")

    def __init__(self, queue: ReviewQueue, *, injection_threshold: float = 0.6) -> None:
        self.queue = queue
        self.injection_threshold = injection_threshold

    def risk(self, text: str) -> str | None:
        found = scan(text)
        if found.score >= self.injection_threshold:
            return f"possible prompt injection ({', '.join(found.rules)})"
        kinds = sorted({f.kind for f in detect(text) if f.kind in self.SENSITIVE})
        return f"sensitive data ({', '.join(kinds)})" if kinds else None

    def before_memory_write(self, ctx: GuardContext, item: T) -> T | None:
        text = item_text(item)
        reason = self.risk(text) if text else None
        if reason is None:
            return item
        self.queue.submit(kind="memory_write", user_id=ctx.user_id, session_id=ctx.session_id,
                          content=text or "", reason=f"risky memory write: {reason}",
                          details={"item": item})
        ctx.held_for_review.append(reason)
        return None
