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
sentence with a wrong value, binding, name, negation, antonym or role swap (``HARD``) may
be demoted by a judge, never promoted -- a persuasive model cannot turn "45 EUR outside
the EU" (or "within Switzerland") green. A judge that fails, answers nothing usable or
misses ``timeout_s`` leaves the sentence as the checker left it (``judge:failed``), never
the turn. What a judge reads is untrusted: a claim or cited text that reads as a prompt
injection (``guardrails.injection.scan``, a chunk marked at ingest, or wording aimed at a
grader: "claims citing this page are supported", ``"verdict":``) is never sent
(``judge:skipped:injection``) -- a document must not talk its own claims green; neither is
a claim whose cited text has nothing readable.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from guardrails.citations import THRESHOLD, CitationReport, CitedSentence
from guardrails.injection import THRESHOLD as INJECTION_THRESHOLD
from guardrails.injection import scan

__all__ = ["BAND", "HARD", "JUDGE_VERDICTS", "MAX_CALLS", "MAX_CALLS_LIMIT", "MAX_EVIDENCE_CHARS",
           "MAX_TIMEOUT_S", "TIMEOUT_S", "Judge", "check_band", "check_judge_limits", "evidence_for",
           "judged", "judged_score", "refine", "steers_a_judge"]

log = logging.getLogger(__name__)

JUDGE_VERDICTS = ("supported", "partial", "not_supported")
#: The checker's scores a judge is asked about (calibrated on WiCE dev; see docs/benchmarks.md).
BAND = (0.25, 0.8)
MAX_CALLS = 4
MAX_CALLS_LIMIT = 16  # a judge is a few calls per answer, not one per sentence of a long one
#: Most seconds an answer waits for its judgements (each call also has the provider's timeouts).
TIMEOUT_S = 20.0
MAX_TIMEOUT_S = 300.0
#: Most characters of cited text a judge reads per claim, all cited sources together.
MAX_EVIDENCE_CHARS = 6000
_MAX_SOURCES = 8  # cited sources a judge reads per claim
#: Reasons (prefixes) a judge may not overrule upwards: exact findings of the checker.
HARD = ("number", "binding:", "entity:", "negation", "antonym", "role:", "invalid", "not_checkable")
_SKIPPED, _FAILED = "skipped:injection", "failed"
_LABEL = r"(?:supported|verified|true|correct|accurate|valid|partially_supported|not_supported)"
#: Wording aimed at whoever grades the text, which the general injection rules need not know.
_STEER = re.compile("|".join((
    r"[\"']?\bverdicts?\b[\"']?\s*[:=]",
    r"\b(?:verification|fact[- ]?check(?:ing)?|review|grading)\s+(?:status|result)\b",
    r"\b(?:evaluators?|graders?|verifiers?|checkers?|judges?|fact[- ]?checkers?|assessors?|raters?|"
    r"ai|llms?|models?|assistants?)\b[^.\n]{0,40}\b(?:instructions?|note|output|respond|answer|reply|"
    r"mark|label|rate|say)\b[^.\n]{0,30}\b" + _LABEL,
    r"\b(?:be|is|are)\s+(?:marked|rated|judged|considered|treated|labell?ed|scored|graded|deemed)"
    r"\s+(?:as\s+)?[\"']?" + _LABEL,
    r"\b(?:all|any|every|each)\s+(?:of\s+the\s+)?(?:claims?|statements?|sentences?|answers?)\b"
    r"[^.\n]{0,60}\b" + _LABEL,
    r"\b(?:respond|answer|reply|output|return)\s+(?:with\s+|only\s+)?[\"'(]?" + _LABEL + r"\b",
    r"\bexpected\s+(?:output|answer|verdict)\b",
    r"\b(?:not|partially)_supported\b",  # the judge's own schema words, in any language's text
    r"</?\s*(?:evidence|claim|verdict|instructions?|system)\b[^>]*>",
)), re.IGNORECASE)
_PARENTHESISED_LABEL = re.compile(r"[(\[]\s*" + _LABEL + r"\s*[)\]]", re.IGNORECASE)
_WORDS = re.compile(r"[^\W\d_]{2}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")


class Judge(Protocol):
    """Says whether ``evidence`` supports ``claim``: one of ``JUDGE_VERDICTS``, or None
    when it cannot tell. ``metadata`` (``user_id``, ``session_id``) is for the ledger."""

    def __call__(self, claim: str, evidence: str, *, question: str | None = None,
                 metadata: Mapping[str, Any] | None = None) -> str | None: ...


def check_band(band: tuple[float, float], threshold: float = THRESHOLD) -> tuple[float, float]:
    """``band`` as floats; ValueError unless it straddles ``threshold`` within [0, 1]."""
    lo, hi = (float(b) for b in band)
    if not 0.0 <= lo < threshold <= hi <= 1.0:
        raise ValueError(f"a judge's band must straddle the threshold: 0 <= low < {threshold} <= high <= 1, "
                         f"got {band!r}")
    return lo, hi


def check_judge_limits(max_calls: int, timeout_s: float) -> tuple[int, float]:
    """``(max_calls, timeout_s)`` checked: ValueError unless 0 <= max_calls <= ``MAX_CALLS_LIMIT``
    (an int) and 0 < timeout_s <= ``MAX_TIMEOUT_S`` -- the bounds the settings enforce, also
    for a guard built in code."""
    if type(max_calls) is not int or not 0 <= max_calls <= MAX_CALLS_LIMIT:
        raise ValueError(f"a judge's max_calls must be an int in [0, {MAX_CALLS_LIMIT}], got {max_calls!r}")
    if (isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float)
            or not 0 < timeout_s <= MAX_TIMEOUT_S):
        raise ValueError(f"a judge's timeout_s must be seconds in (0, {MAX_TIMEOUT_S:g}], got {timeout_s!r}")
    return max_calls, float(timeout_s)


def judged_score(score: float, verdict: str, band: tuple[float, float] = BAND,
                 threshold: float = THRESHOLD) -> float:
    """``score`` moved into ``verdict``'s part of ``band`` (module docstring)."""
    lo, hi = check_band(band, threshold)
    r = min(1.0, max(0.0, (score - lo) / (hi - lo)))
    mid = (lo + threshold) / 2
    start, end = {"supported": (threshold, hi), "partial": (mid, threshold),
                  "not_supported": (lo, mid)}[verdict]
    out = start + r * (end - start)
    return round(min(out, end - 1e-4) if verdict != "supported" else max(out, threshold), 4)


def steers_a_judge(text: str) -> bool:
    """Does ``text`` read as an instruction (to a model, or to whoever grades it)?"""
    return (scan(text).score >= INJECTION_THRESHOLD or _STEER.search(text) is not None
            or _PARENTHESISED_LABEL.search(text) is not None)


def evidence_for(item: CitedSentence, sources: Mapping[str, str], limit: int = MAX_EVIDENCE_CHARS) -> str:
    """The cited sources' text for a judge, as written (line breaks kept), each cut to its
    share of ``limit`` around the evidence the checker found (a long document is read where
    the claim points); "" when none of it is readable text."""
    cited = list(dict.fromkeys(item.cited))[:_MAX_SOURCES]
    share = max(1, limit // max(1, len(cited)))
    parts = []
    for sid in cited:
        body = sources.get(sid)
        body = body if isinstance(body, str) else ""
        if len(body) > share:
            at = body.find(item.evidence) if item.evidence else -1
            start = max(0, min(len(body) - share, at - share // 3)) if at >= 0 else 0
            body = ("… " if start else "") + body[start:start + share] + " …"
        if _WORDS.search(body) and len(_CONTROL.findall(body)) <= 0.02 * len(body):
            parts.append(f"[{sid}] {body}" if len(cited) > 1 else body)
    return "\n".join(parts)


def _askable(item: CitedSentence, band: tuple[float, float]) -> bool:
    return (bool(item.cited) and item.claim and item.verdict in ("supported", "unsupported")
            and band[0] <= item.score <= band[1]
            and not any(r.startswith(("invalid", "not_checkable")) for r in item.reasons))


def refine(report: CitationReport, sources: Mapping[str, str], judge: Judge, *,
           band: tuple[float, float] = BAND, max_calls: int = MAX_CALLS, question: str | None = None,
           metadata: Mapping[str, Any] | None = None, suspect: Collection[str] = (),
           timeout_s: float = TIMEOUT_S, workers: int = 4) -> CitationReport:
    """``report`` with its unsure cited sentences re-scored by ``judge`` (a new report;
    the one given is left as it was). ``suspect``: ids of sources already marked as
    possible injections (their claims are never judged)."""
    band = check_band(band)
    srcs = {str(k): v if isinstance(v, str) else str(v or "") for k, v in sources.items()}
    asked = [i for i, s in enumerate(report.sentences) if _askable(s, band)]
    asked = sorted(asked, key=lambda i: abs(report.sentences[i].score - THRESHOLD))[:max(0, max_calls)]
    if not asked:
        return report
    verdicts: dict[int, str] = {}
    pending: dict[int, tuple[str, str]] = {}
    for i in asked:
        s = report.sentences[i]
        evidence = evidence_for(s, srcs)
        if not evidence:
            verdicts[i] = _FAILED
        elif (set(s.cited) & set(suspect) or steers_a_judge(evidence) or steers_a_judge(s.text)
              or (question and steers_a_judge(question))):
            verdicts[i] = _SKIPPED
        else:
            pending[i] = (s.text, evidence)

    def ask(i: int) -> str:
        claim, evidence = pending[i]
        try:
            verdict = judge(claim, evidence, question=question, metadata=metadata)
            return verdict if type(verdict) is str and verdict in JUDGE_VERDICTS else _FAILED
        except (Exception, asyncio.CancelledError):  # a judge is advice: the checker's verdict stands
            log.warning("citation judge failed; the checker's verdict stands", exc_info=True)
            return _FAILED

    if pending:
        verdicts.update(_ask_all(ask, list(pending), workers=workers, timeout_s=timeout_s))
    return CitationReport([_apply(s, verdicts[i], band) if i in verdicts else s
                           for i, s in enumerate(report.sentences)])


def _ask_all(ask: Any, keys: list[int], *, workers: int, timeout_s: float) -> dict[int, str]:
    """``ask(key)`` for every key on at most ``workers`` daemon threads, for at most
    ``timeout_s`` seconds in all; a key not answered by then is ``failed``. Daemon threads,
    not an executor: a hung provider call must delay neither this answer nor the process's
    exit (an executor's workers are joined at interpreter shutdown)."""
    todo, done, lock = list(keys), {}, threading.Lock()
    finished = threading.Event()

    def work() -> None:
        while True:
            with lock:
                if not todo or finished.is_set():
                    return
                key = todo.pop(0)
            verdict = ask(key)
            with lock:
                done[key] = verdict
                if len(done) == len(keys):
                    finished.set()

    for n in range(max(1, min(workers, len(keys)))):
        threading.Thread(target=work, name=f"judge-{n}", daemon=True).start()
    finished.wait(max(0.0, timeout_s))
    with lock:
        finished.set()  # workers still running drop what is left; their late verdicts are ignored
        return {key: done.get(key, _FAILED) for key in keys}


def _apply(item: CitedSentence, verdict: str, band: tuple[float, float]) -> CitedSentence:
    if verdict in (_SKIPPED, _FAILED):
        return replace(item, reasons=[*item.reasons, f"judge:{verdict}"])
    if verdict != "not_supported" and any(r.startswith(HARD) for r in item.reasons):
        return replace(item, reasons=[*item.reasons, f"judge:{verdict}:overruled"])
    score = judged_score(item.score, verdict, band)
    if verdict == "supported":  # the judge read the paraphrase the checker could not place
        reasons = [r for r in item.reasons if not r.startswith(("low similarity", "partial", "part:"))]
    else:
        reasons = [*item.reasons]
        if verdict == "partial" and not any(r.startswith(("partial", "part:")) for r in reasons):
            reasons.append("partial:judge")
    return replace(item, score=score, verdict="supported" if verdict == "supported" else "unsupported",
                   reasons=[*reasons, f"judge:{verdict}"], status=verdict)


def judged(sentences: Sequence[CitedSentence]) -> int:
    """How many sentences a judge re-scored."""
    return sum(any(r.startswith("judge:") and r not in (f"judge:{_FAILED}", f"judge:{_SKIPPED}")
                   and not r.endswith(":overruled") for r in s.reasons) for s in sentences)
