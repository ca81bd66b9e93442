"""Long claims checked part by part (issue 13, WiCE): the union of each clause's best
sentence as a window, graded clause coverage, names found elsewhere in the cited text."""

from __future__ import annotations

import pytest

from guardrails.citations import (
    ELSEWHERE_PENALTY,
    HARD_PENALTY,
    THRESHOLD,
    _cover_factor,
    _graded,
    _part_union,
    _penalty,
    verify_citations,
)
from guardrails.roles import clause_coverage

SENTS = ["The weather was cold that spring.", "Jane Smith trained as a chemist in Leeds.",
         "Many visitors came to the fair.", "In 2010 she won the Davy Medal for her research."]


def test_part_union_joins_each_clauses_best_sentence_in_source_order() -> None:
    claim = "Jane Smith trained as a chemist in Leeds, and won the Davy Medal for research in 2010."
    assert _part_union(claim, SENTS) == f"{SENTS[1]} {SENTS[3]}"
    assert _part_union("Jane Smith trained as a chemist.", SENTS) is None  # one clause
    assert _part_union(claim, SENTS[:1]) is None  # one sentence


def test_cover_factor_grades_partial_mention() -> None:
    assert _cover_factor([("a b", 2, 1.0), ("c d", 2, 0.9)]) == 1.0
    assert _cover_factor([("a b", 2, 0.45), ("x", 1, 0.0)]) == pytest.approx(0.25)
    assert _cover_factor([]) == 1.0


@pytest.mark.parametrize("score", [0.0, 0.3, THRESHOLD, 0.8, 1.0])
def test_graded_score_never_changes_the_verdict(score: float) -> None:
    got = _graded(score, 0.25, THRESHOLD)
    assert (got >= THRESHOLD) == (score >= THRESHOLD)
    assert got <= score
    # A supported score is kept as measured: attribution's margin above the threshold reads it.
    assert score < THRESHOLD or got == score


def test_names_elsewhere_in_the_cited_text_cost_less() -> None:
    named = {"jane", "smith"}
    assert _penalty([], named) == 1.0
    assert _penalty(["entity:jane,smith"], named) == ELSEWHERE_PENALTY
    assert _penalty(["entity:bob"], named) == HARD_PENALTY
    assert _penalty(["number", "entity:jane"], named) == HARD_PENALTY
    assert _penalty(["number", "entity:jane"], named, numbered=True) == ELSEWHERE_PENALTY


def test_clause_coverage_counts_words_anywhere_in_the_sources() -> None:
    cover = clause_coverage("She won the Davy Medal, and moved to Paris", SENTS)
    assert [round(c, 2) for _, _, c in cover] == [1.0, 0.0]


def test_a_long_claim_from_two_sentences_far_apart_is_supported() -> None:
    claim = "Jane Smith, who trained as a chemist in Leeds, won the Davy Medal in 2010 [1]."
    got = verify_citations(claim, {"1": " ".join(SENTS)}).sentences[0]
    assert got.status == "supported", got
    added = verify_citations(claim.replace("in 2010", "and moved to Paris in 2010"),
                             {"1": " ".join(SENTS)}).sentences[0]
    assert added.score < got.score


def test_more_kinds_of_failure_rank_a_flagged_claim_lower() -> None:
    src = {"1": " ".join(SENTS)}
    one = verify_citations("Jane Smith won the Davy Medal in 2012 [1].", src).sentences[0]
    two = verify_citations("Jane Smith won the Nobel Medal in 2012 [1].", src).sentences[0]
    assert one.verdict == two.verdict == "unsupported"
    assert two.score < one.score


def test_circa_before_a_year_does_not_end_the_sentence() -> None:
    from guardrails.claims import split_sentences

    assert split_sentences("The panel dates from c. 1491–1510. [1]") == [
        "The panel dates from c. 1491–1510. [1]"]
