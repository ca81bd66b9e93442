"""The guard that holds risky memory writes for a human: ``before_memory_write`` queues
them in ``memory.review.ReviewQueue`` instead of writing them.

It is a guard (it judges text with the injection and PII detectors), so it lives here;
the queue it fills is storage, so that stays in ``memory/`` (guardrails sit above memory).

``worth_review`` is the one rule for which *answers* a reviewer sees (issue 13): only an
answer that asserts something checkable. Greetings, chit-chat, questions back and
answers with no factual claim never go to review, whatever their confidence; nor does an
uncited claim that has nothing to do with the sources shown ("The answer is: 4." next to
a travel policy) -- the UI marks it "not verified against your documents" instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from guardrails.base import Guard, GuardContext
from guardrails.claims import content_stems, is_claim, parse_markers, split_sentences
from guardrails.injection import scan
from guardrails.normalize import item_text
from guardrails.pii import detect
from memory.review import ReviewQueue

__all__ = ["ReviewGate", "worth_review"]

T = TypeVar("T")


def _claims(text: str) -> list[str]:
    return [t for t in (parse_markers(s)[0] for s in split_sentences(text or "")) if is_claim(t)]


def worth_review(answer: str, checks: Sequence[Any] | None = None,
                 sources: Mapping[str, str] | None = None) -> bool:
    """Does this answer make a claim a reviewer could check? ``checks``: the sentence
    checks (``None``: none ran); ``sources``: the text of each source shown, by id."""
    if checks:
        claims = [c for c in checks if getattr(c, "claim", True)]
        cited = [c for c in claims if getattr(c, "cited", ())]
        if cited:
            return True
        if not claims:
            return False
        shown = set().union(*(content_stems(t) for t in (sources or {}).values()))
        # An uncited claim counts when it shares content with a shown source (then it
        # could have been checked); an off-source one is simply unverified.
        return any(len(content_stems(c.text) & shown) >= 2 for c in claims)
    return bool(_claims(answer))


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
