"""Binding-aware citation checks, verdict statuses, relevance and bad input (issue 13),
with the real MiniLM encoder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.citations import answer_for
from guardrails.citations import STATUSES, VERDICTS, verify_citations
from guardrails.frames import check_binding, decompose, units
from guardrails.relevance import relevance

POLICY = ("Meals are reimbursed as follows. The daily per diem is 45 EUR within the EU and 60 EUR "
          "outside the EU. Economy class is booked for flights under 6 hours; business class is "
          "allowed for longer flights.")
SRC = {"1": POLICY}
BINDING = Path(__file__).parent / "data" / "binding_cases.jsonl"


def one(answer: str, sources: dict[str, str] = SRC):  # type: ignore[no-untyped-def]
    report = verify_citations(answer, sources)
    assert len(report.sentences) == 1
    return report.sentences[0]


def test_per_diem_wrong_binding_is_not_supported_and_points_to_the_right_sentence() -> None:
    bad = one("The per diem outside the EU is 45 EUR [1].")
    assert bad.verdict == "unsupported" and bad.status == "not_supported"
    assert any(r.startswith("binding") for r in bad.reasons)
    assert bad.span is not None and bad.span[0] == "1"
    assert POLICY[bad.span[1]:bad.span[2]].startswith("The daily per diem is 45 EUR")
    good = one("The per diem outside the EU is 60 EUR [1].")
    assert good.status == "supported" and good.span is not None
    assert "60 EUR outside" in POLICY[good.span[1]:good.span[2]]


def test_class_and_range_bindings() -> None:
    assert one("Business class is allowed for flights under 6 hours [1].").status == "not_supported"
    assert one("Economy class is booked for flights over 6 hours [1].").status == "not_supported"
    assert one("Business class is allowed for flights over 6 hours [1].").status == "supported"
    assert one("Economy class is booked for flights under 6 hours [1].").status == "supported"


def test_compound_claim_is_partial_when_one_part_is_wrong() -> None:
    assert decompose("The per diem is 45 EUR within the EU and 60 EUR outside the EU") == [
        "The per diem is 45 EUR within the EU", "The per diem is 60 EUR outside the EU"]
    mixed = one("The per diem is 45 EUR within the EU and 45 EUR outside the EU [1].")
    assert mixed.status == "partial" and mixed.verdict == "unsupported" and len(mixed.parts) == 2
    assert check_binding("The per diem is 60 EUR outside the EU", units(POLICY)) is None


def test_statuses_cover_every_sentence_kind() -> None:
    report = verify_citations("Hello! The per diem is 45 EUR within the EU [1]. It is 9 EUR [7]. "
                              "Taxis are reimbursed up to 30 EUR.", SRC)
    got = [(s.verdict, s.status) for s in report.sentences]
    assert got == [("uncited", "not_checkable"), ("supported", "supported"),
                   ("invalid_citation", "invalid_citation"), ("uncited", "not_supported")]
    assert all(s.status in STATUSES and s.verdict in VERDICTS for s in report.sentences)


def test_binding_test_split_meets_the_bar() -> None:
    cases = [json.loads(line) for line in BINDING.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert {c["split"] for c in cases} == {"binding_dev", "binding_test"}
    test = [c for c in cases if c["split"] == "binding_test"]
    wrong = [c for c in test if c["label"] != "supported"]
    right = [c for c in test if c["label"] == "supported"]
    assert len(wrong) >= 20 and len(right) >= 20

    def passed(c: dict) -> bool:  # type: ignore[type-arg]
        return verify_citations(answer_for(c), c["sources"]).sentences[0].verdict == "supported"

    flagged = sum(not passed(c) for c in wrong) / len(wrong)
    kept = sum(passed(c) for c in right) / len(right)
    assert flagged >= 0.85 and kept >= 0.90, (flagged, kept)


def test_off_question_supported_sentence_is_reported() -> None:
    q = "Which class can I book for a 4-hour flight?"
    assert relevance(q, "The daily per diem is 45 EUR within the EU.").on_question is False
    assert relevance(q, "Economy class is booked for flights under 6 hours.").on_question is True
    assert relevance("and?", "Economy class is booked.").on_question is None


def test_bad_input_gives_a_clear_verdict() -> None:
    assert one("The sky is blue [1].", {"1": "   \n "}).status == "not_checkable"
    assert one(" ".join(["word"] * 5000) + " [1].").status == "not_checkable"
    assert one("\x00\x01\x02\x03 abc \x04\x05\x06 [1].").status == "not_checkable"
    assert one("The per diem is 45 EUR [9].").status == "invalid_citation"
    mixed = one("Суточные 45 EUR 每日 within the EU [1].")
    assert mixed.status in STATUSES and math.isfinite(mixed.score)


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


@pytest.mark.slow  # the real encoder on every example
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=_TEXT, source=_TEXT, ids=st.lists(st.sampled_from(["1", "2", "9", "x1"]), max_size=3))
def test_fuzz_never_raises_and_scores_are_finite(answer: str, source: str, ids: list[str]) -> None:
    text = answer + "".join(f" [{i}]" for i in ids)
    report = verify_citations(text, {"1": source, "2": source[::-1]})
    for s in report.sentences:
        assert s.status in STATUSES and s.verdict in VERDICTS
        assert math.isfinite(s.score) and 0.0 <= s.score <= 1.5
        if s.span is not None:
            assert s.span[0] in ("1", "2") and 0 <= s.span[1] <= s.span[2]
    assert math.isfinite(report.groundedness)


def test_a_swapped_name_is_not_excused_by_the_values_sitting_together() -> None:
    # "14" and "gold" sit in one clause of the source, so the frame check is satisfied; the
    # subject is still someone else's (a role swap of a name, not of a value).
    src = {"1": "The championship was held in Lyon in 2019. Kenya topped the final standings with 14 "
                "gold medals, two more than Ethiopia."}
    assert one("Ethiopia topped the final standings with 14 gold medals [1].", src).verdict == "unsupported"
    assert one("Kenya topped the final standings with 14 gold medals [1].", src).verdict == "supported"
