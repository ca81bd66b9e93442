"""A second opinion for the cited sentences the local checker is unsure about.

Why: the lexical/MiniLM checker (``guardrails.citations``) ranks claims well where words
and values decide (bindings, numbers, names), but a claim one paraphrase away from its
source needs a reader. A judge -- a model asked "does this evidence support this
claim?" (``assistant.judge.ModelJudge``, ledger purpose ``verify``) -- is consulted only
where the checker's score falls inside ``band``, at most ``max_calls`` sentences per
answer (the lowest-confidence ones, nearest the threshold first), so a turn pays for it
only when the verdict is in doubt. Off by default (``LASTMILE_VERIFY_MODEL``).

How the judgement lands: the band is cut into three: *not supported* ``[lo, m)``,
*partly* ``[m, THRESHOLD)``, *supported* ``[THRESHOLD, hi]`` (``m`` halfway). A judged
sentence moves into its verdict's part, keeping its relative place within the band, so
scores stay comparable with the unjudged ones above and below it and the verdict and
status follow the score as everywhere else. The checker's exact findings stay binding: a
sentence with a wrong value, binding, negation, antonym or role swap (``HARD``) may be
demoted by a judge, never promoted -- a persuasive model cannot turn "45 EUR outside the
EU" green. A judge that fails, times out or answers nothing usable leaves the sentence as
the checker left it (``judge:failed`` in its reasons), never the turn. Cited text that
reads as a prompt injection (``guardrails.injection.scan``) is never sent to a judge
(``judge:skipped:injection``): a document must not talk its own claims green.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from guardrails.citations import THRESHOLD, CitationReport, CitedSentence
from guardrails.injection import THRESHOLD as INJECTION_THRESHOLD
from guardrails.injection import scan

__all__ = ["BAND", "HARD", "JUDGE_VERDICTS", "MAX_CALLS", "MAX_EVIDENCE_CHARS", "Judge", "evidence_for",
           "judged", "judged_score", "refine"]

log = logging.getLogger(__name__)

JUDGE_VERDICTS = ("supported", "partial", "not_supported")
#: The checker's scores a judge is asked about (calibrated on WiCE dev; see docs/benchmarks.md).
BAND = (0.25, 0.8)
MAX_CALLS = 4
#: Most characters of cited text a judge reads per claim (centred on the evidence).
MAX_EVIDENCE_CHARS = 6000
#: Reasons (prefixes) a judge may not overrule upwards: exact findings of the checker.
HARD = ("number", "binding:", "negation", "antonym", "role:", "invalid", "not_checkable")


class Judge(Protocol):
    """Says whether ``evidence`` supports ``claim``: one of ``JUDGE_VERDICTS``, or None
    when it cannot tell. ``metadata`` (``user_id``, ``session_id``) is for the ledger."""

    def __call__(self, claim: str, evidence: str, *, question: str | None = None,
                 metadata: Mapping[str, Any] | None = None) -> str | None: ...


def judged_score(score: float, verdict: str, band: tuple[float, float] = BAND,
                 threshold: float = THRESHOLD) -> float:
    """``score`` moved into ``verdict``'s part of ``band`` (module docstring)."""
    lo, hi = band
    r = min(1.0, max(0.0, (score - lo) / (hi - lo))) if hi > lo else 0.5
    mid = (lo + threshold) / 2
    start, end = {"supported": (threshold, hi), "partial": (mid, threshold),
                  "not_supported": (lo, mid)}[verdict]
    out = start + r * (end - start)
    return round(min(out, end - 1e-4) if verdict != "supported" else max(out, threshold), 4)


def evidence_for(item: CitedSentence, sources: Mapping[str, str], limit: int = MAX_EVIDENCE_CHARS) -> str:
    """The cited sources' text for a judge, each cut to its share of ``limit`` around the
    evidence the checker found (a long document is read where the claim points)."""
    share = max(200, limit // max(1, len(item.cited)))
    parts = []
    for sid in item.cited:
        body = " ".join(str(sources.get(sid, "")).split())
        if len(body) > share:
            at = body.find(" ".join((item.evidence or "").split())) if item.evidence else -1
            start = max(0, min(len(body) - share, at - share // 3)) if at >= 0 else 0
            body = ("… " if start else "") + body[start:start + share] + " …"
        parts.append(f"[{sid}] {body}" if len(item.cited) > 1 else body)
    return "\n".join(parts)


def _askable(item: CitedSentence, band: tuple[float, float]) -> bool:
    return (bool(item.cited) and item.claim and item.verdict in ("supported", "unsupported")
            and band[0] <= item.score <= band[1]
            and not any(r.startswith(("invalid", "not_checkable")) for r in item.reasons))


def refine(report: CitationReport, sources: Mapping[str, str], judge: Judge, *,
           band: tuple[float, float] = BAND, max_calls: int = MAX_CALLS, question: str | None = None,
           metadata: Mapping[str, Any] | None = None, workers: int = 4) -> CitationReport:
    """``report`` with its unsure cited sentences re-scored by ``judge`` (a new report;
    the one given is left as it was)."""
    asked = [i for i, s in enumerate(report.sentences) if _askable(s, band)]
    asked = sorted(asked, key=lambda i: abs(report.sentences[i].score - THRESHOLD))[:max(0, max_calls)]
    if not asked:
        return report

    def ask(i: int) -> str | None:
        s = report.sentences[i]
        evidence = evidence_for(s, sources)
        if scan(evidence).score >= INJECTION_THRESHOLD:
            return _SKIPPED
        try:
            verdict = judge(s.text, evidence, question=question, metadata=metadata)
        except Exception:  # a judge is advice: the checker's verdict stands
            log.warning("citation judge failed; the checker's verdict stands", exc_info=True)
            return None
        return verdict if verdict in JUDGE_VERDICTS else None

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(asked)))) as pool:
        verdicts = dict(zip(asked, pool.map(ask, asked), strict=True))
    return CitationReport([_apply(s, verdicts[i], band) if i in verdicts else s
                           for i, s in enumerate(report.sentences)])


_SKIPPED = "skipped:injection"


def _apply(item: CitedSentence, verdict: str | None, band: tuple[float, float]) -> CitedSentence:
    if verdict == _SKIPPED:
        return replace(item, reasons=[*item.reasons, f"judge:{verdict}"])
    if verdict is None:
        return replace(item, reasons=[*item.reasons, "judge:failed"])
    if verdict != "not_supported" and any(r.startswith(HARD) for r in item.reasons):
        return replace(item, reasons=[*item.reasons, f"judge:{verdict}:overruled"])
    score = judged_score(item.score, verdict, band)
    reasons = [r for r in item.reasons if r != "low similarity"] if verdict == "supported" else [
        *item.reasons]
    if verdict == "partial" and not any(r.startswith(("partial", "part:")) for r in reasons):
        reasons.append("partial:judge")
    return replace(item, score=score, verdict="supported" if verdict == "supported" else "unsupported",
                   reasons=[*reasons, f"judge:{verdict}"], status=verdict)


def judged(sentences: Sequence[CitedSentence]) -> int:
    """How many sentences a judge re-scored."""
    return sum(any(r.startswith("judge:") and r not in ("judge:failed", f"judge:{_SKIPPED}")
                   for r in s.reasons) for s in sentences)
