"""Issue 13: review what matters. Chit-chat, questions back and answers with no factual
claim never reach a reviewer, whatever their confidence; checkable claims still do."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from assistant.grounding import submit_review
from assistant.reply import SentenceCheck
from assistant.settings import Settings
from assistant.turn import TurnState
from guardrails.review_gate import worth_review

POLICY = {"1": "The daily per diem is 45 EUR within the EU and 60 EUR outside the EU."}


@pytest.mark.parametrize("answer", ["Hello! How can I help you today?", "Thanks, glad to help!",
                                    "Would you like me to check anything else?", "Goodbye!"])
def test_chit_chat_is_never_worth_review(answer: str) -> None:
    assert not worth_review(answer)
    checks = [SentenceCheck(answer, (), "uncited", 1.0, claim=False)]
    assert not worth_review(answer, checks, POLICY)


def test_claims_are_worth_review_and_off_source_uncited_ones_are_not() -> None:
    wrong = SentenceCheck("The per diem outside the EU is 45 EUR.", ("1",), "unsupported", 0.3)
    assert worth_review(wrong.text + " [1]", [wrong], POLICY)
    on_topic = SentenceCheck("The per diem outside the EU is 80 EUR.", (), "uncited", 0.0)
    assert worth_review(on_topic.text, [on_topic], POLICY)  # could have been checked
    off = SentenceCheck("The answer is: 4.", (), "uncited", 0.0)
    assert not worth_review(off.text, [off], POLICY)
    assert worth_review("Rental cars are limited to 80 EUR per day.")  # nothing checked: a claim


class _Queue:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def submit(self, **item: object) -> None:
        self.items.append(item)


@pytest.mark.parametrize(("answer", "queued"), [("Hello! What can I do for you?", False),
                                                ("The per diem outside the EU is 45 EUR.", True)])
def test_low_confidence_chit_chat_is_not_queued(answer: str, queued: bool) -> None:
    queue, ctx = _Queue(), TurnState(user_id="u", session_id="s")
    stored = SimpleNamespace(id=7, content=answer, provider="local")
    status = submit_review(queue, Settings(), ctx, "hi", stored, 0.3, ["local fallback"])
    assert (status == "pending") is queued and bool(queue.items) is queued
