"""The citation guard: checks a grounded answer against the sources it was shown.

After the model, ``CitationGuard.after_model`` reads ``ctx.sources`` (the
numbered ``SourceRef``s the prompt showed, ``{id: ref}``), runs
``guardrails.verify_citations`` and leaves for the orchestrator:

* ``ctx.citations``: one ``Citation`` per cited source, verdict aggregated;
* ``ctx.citation_checks``: every sentence's ``SentenceCheck``;
* ``ctx.groundedness``: share of claim sentences supported (feeds confidence).

Uncited claim sentences are then attributed post hoc (``guardrails.attribution``): the
shown source that passes the same check is attached with ``origin="attributed"``, and
under ``attribute="mark"`` (the default) its ``[n]`` is added to the text; ``panel`` only
lists it; ``off`` leaves uncited sentences uncited. Attributed sentences count as
supported in groundedness -- the check measured that support, with a stricter bar -- and
keep their measured score; what no source supports stays ``uncited``.

Then the deployment policy: ``annotate`` leaves the text as the model wrote it -- the
verdicts live beside it (``ctx.citation_checks`` -> the reply record), the UI draws them,
and no marker ever re-enters a prompt (``LABELS`` are the markers older versions wrote,
kept for migration 0016 and the UI's wording); ``strip`` removes flagged sentences;
``reask`` is handled by the orchestrator
(``assistant.grounding.reask_once`` re-asks the model once naming the failures) and
whatever still fails afterwards is annotated. No sources shown: nothing to check, the
text passes untouched (a "[1]" in code is not a citation then).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assistant.reply import Citation, SentenceCheck
from guardrails.attribution import MODES, Attribution, attribute
from guardrails.base import Guard, GuardContext
from guardrails.citations import CitationReport, verify_citations
from guardrails.injection import THRESHOLD as INJECTION_THRESHOLD
from guardrails.judging import (
    BAND,
    MAX_CALLS,
    TIMEOUT_S,
    Judge,
    check_band,
    check_judge_limits,
    judged,
    refine,
)

__all__ = ["BAD_VERDICTS", "LABELS", "POLICIES", "CitationGuard", "failures_prompt", "groundedness",
           "mark_attributed", "summarise"]

log = logging.getLogger(__name__)
POLICIES = ("annotate", "strip", "reask")
BAD_VERDICTS = ("unsupported", "invalid_citation")
LABELS = {"unsupported": " ⚠ (unverified: the cited source does not support this)",
          "invalid_citation": " ⚠ (unverified: cites a source that was not provided)"}
STRIPPED_ALL = "I could not find support for an answer in the available sources."
_SEP = r"(?:\s*\[[^\]\n]{1,24}\]|[^\w\[])*?"  # between words: spaces, punctuation, [n] markers
_TAIL = re.compile(r"(?:\s*\[[^\]\n]{1,24}\]|[^\w\s\[])*")  # closing punctuation and markers


def summarise(report: CitationReport, sources: Mapping[str, Any],
              attributed: Sequence[Attribution] = ()) -> tuple[list[Citation], list[SentenceCheck]]:
    """Sentence checks, and one ``Citation`` per cited id in order of first citation.
    ``attributed`` sentences become supported checks citing their source (origin
    ``attributed``); a source the model cited keeps origin ``model`` and the verdict of
    the model's own sentences."""
    found = {a.index: a for a in attributed}
    checks = [SentenceCheck(s.text, (found[i].source_id,), "supported", found[i].score, True, "attributed",
                            "supported", found[i].span)
              if i in found else SentenceCheck(s.text, tuple(s.cited), s.verdict, float(s.score),
                                               bool(getattr(s, "claim", True)), "model",
                                               getattr(s, "status", ""), getattr(s, "span", None),
                                               tuple(getattr(s, "reasons", ()) or ()))
              for i, s in enumerate(report.sentences)]
    evidence: dict[str, list[Any]] = {}
    for i, s in enumerate(report.sentences):
        for sid in ((found[i].source_id,) if i in found else s.cited):
            seen = found[i].evidence if i in found else getattr(s, "evidence", None)
            evidence.setdefault(sid, []).append(seen)
    by_id: dict[str, list[SentenceCheck]] = {}
    for check in checks:
        for sid in check.cited:
            by_id.setdefault(sid, []).append(check)
    citations = []
    for sid, cited in by_id.items():
        ref = sources.get(sid)
        if ref is None:
            citations.append(Citation(sid, "", "", "", "invalid_citation", sentences=tuple(cited)))
            continue
        own = [c for c in cited if c.origin == "model"]
        verdicts = ({c.verdict for c in own or cited if c.verdict != "invalid_citation"}
                    or {"invalid_citation"})
        verdict = verdicts.pop() if len(verdicts) == 1 else "partial"
        snippet = next((e for e in evidence.get(sid, []) if isinstance(e, str) and e and e in ref.text), None)
        citations.append(Citation(sid, ref.title, ref.path, _snip(snippet or ref.text), verdict,
                                  page=ref.page, chunk_id=ref.chunk_id, sentences=tuple(cited),
                                  origin="model" if own else "attributed"))
    return citations, checks


def groundedness(checks: Sequence[SentenceCheck]) -> float:
    """Share of claim sentences that are supported (1.0 when there are none)."""
    claims = [c for c in checks if c.claim]
    return 1.0 if not claims else sum(c.verdict == "supported" for c in claims) / len(claims)


def _snip(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def failures_prompt(checks: Sequence[SentenceCheck]) -> str:
    """The re-ask message: which sentences failed, and what to do about them."""
    lines = []
    for c in checks:
        if c.verdict == "invalid_citation":
            lines.append(f'- "{c.text}" cites {", ".join(f"[{i}]" for i in c.cited)}, but no such '
                         "source was provided.")
        elif c.verdict == "unsupported":
            lines.append(f'- "{c.text}" is not supported by {", ".join(f"[{i}]" for i in c.cited)}.')
    return ("Some sentences of your answer are not supported by the sources they cite:\n"
            + "\n".join(lines) + "\nRewrite the whole answer using only what the numbered sources "
            "say, citing them like [1]. Drop or correct those sentences; if the sources do not "
            "answer the question, say so.")


def _span(answer: str, text: str, start: int) -> tuple[int, int] | None:
    """Where ``text`` (a checked sentence, markers removed) sits in ``answer`` at or after
    ``start``, including its closing punctuation and citation markers."""
    words = re.findall(r"\w+", text)
    if not words:
        return None
    match = re.compile(_SEP.join(re.escape(w) for w in words)).search(answer, start)
    if match is None:
        return None
    tail = _TAIL.match(answer, match.end())
    return match.start(), tail.end() if tail else match.end()


def _rewrite(answer: str, checks: Sequence[SentenceCheck], edit: Callable[[str, SentenceCheck], str],
             which: Callable[[SentenceCheck], bool] = lambda c: c.verdict in BAD_VERDICTS) -> str | None:
    """Apply ``edit`` to each ``which`` sentence (default: flagged) in place; ``None`` if one
    cannot be found."""
    pieces, cursor = [], 0
    for check in checks:
        span = _span(answer, check.text, cursor)
        if span is None:
            if which(check):
                return None
            continue
        if which(check):
            pieces.append(answer[cursor:span[0]])
            pieces.append(edit(answer[span[0]:span[1]], check))
        else:
            pieces.append(answer[cursor:span[1]])
        cursor = span[1]
    pieces.append(answer[cursor:])
    return "".join(pieces)


_CLOSE = re.compile(r"[.!?…]+[\"'”’)]*\s*$")


def mark_attributed(answer: str, checks: Sequence[SentenceCheck]) -> str:
    """``answer`` with `` [n]`` before the closing punctuation of each attributed sentence
    (the answer unchanged where a sentence cannot be located: the panel still lists it)."""
    def edit(piece: str, check: SentenceCheck) -> str:
        marker = "".join(f" [{sid}]" for sid in check.cited)
        body = piece.rstrip()
        close = _CLOSE.search(body)
        cut = close.start() if close else len(body)
        return body[:cut].rstrip() + marker + body[cut:] + piece[len(body):]

    out = _rewrite(answer, checks, edit, lambda c: c.origin == "attributed")
    return answer if out is None else out


def _rebuild(checks: Sequence[SentenceCheck], keep: Callable[[SentenceCheck], str | None],
             marks: bool = True) -> str:
    """Fallback when sentences cannot be located: the answer rebuilt from the checks
    (attributed ids shown only when ``marks``)."""
    out = []
    for c in checks:
        text = keep(c)
        if text is not None:
            shown = c.verdict != "invalid_citation" and (marks or c.origin == "model")
            out.append(text + "".join(f" [{i}]" for i in c.cited if shown))
    return " ".join(out)


class CitationGuard(Guard):
    """Verify citations after the model and apply the policy (see the module docstring)."""

    name = "citations"

    def __init__(self, policy: str = "annotate", *, attribute: str = "mark",
                 verify: Callable[..., CitationReport] = verify_citations, judge: Judge | None = None,
                 judge_band: tuple[float, float] = BAND, judge_max_calls: int = MAX_CALLS,
                 judge_timeout_s: float = TIMEOUT_S) -> None:
        if policy not in POLICIES:
            raise ValueError(f"citation policy must be one of {POLICIES}, got {policy!r}")
        if attribute not in MODES:
            raise ValueError(f"citation attribution must be one of {MODES}, got {attribute!r}")
        self.policy, self.attribute = policy, attribute
        self.verify = verify
        #: A second opinion on unsure cited sentences (``guardrails.judging``; None: off).
        self.judge, self.judge_band = judge, check_band(judge_band)
        self.judge_max_calls, self.judge_timeout_s = check_judge_limits(judge_max_calls, judge_timeout_s)

    def check(self, ctx: GuardContext, text: str) -> tuple[list[Citation], list[SentenceCheck]] | None:
        """Verify ``text`` against the turn's sources (cached per text); None: no sources."""
        sources = ctx.sources
        if not sources or not text.strip():
            return None
        cached = ctx.citation_cache
        if cached and cached[0] == text:
            return cached[1]
        texts = {sid: ref.text for sid, ref in sources.items()}
        # ``verify(answer, sources, question=...)``: the question frames bare answers.
        verify = functools.partial(self.verify, question=ctx.question or None)
        report = verify(text, texts)
        if self.judge is not None:
            # A chunk marked as a possible injection (at ingest, or by a guard that kept it)
            # is never read by the judge: it must not talk its own claims green.
            suspect = {sid for sid, ref in sources.items()
                       if (ref.injection_score or 0) >= INJECTION_THRESHOLD}
            report = refine(report, texts, self.judge, band=self.judge_band, max_calls=self.judge_max_calls,
                            question=ctx.question or None, suspect=suspect, timeout_s=self.judge_timeout_s,
                            metadata={"user_id": ctx.user_id, "session_id": ctx.session_id})
            ctx.citations_judged = judged(report.sentences)
        found: list[Attribution] = []
        if self.attribute != "off":
            try:
                found = attribute(report.sentences, texts, verify=verify)
            except Exception:
                log.warning("citation attribution failed; uncited sentences stay uncited", exc_info=True)
        result = summarise(report, sources, found)
        ctx.citation_cache = (text, result)
        ctx.groundedness = groundedness(result[1])
        ctx.citations_attributed = len(found)
        return result

    def after_model(self, ctx: GuardContext, text: str) -> str:
        try:
            result = self.check(ctx, text)
        except Exception:
            log.warning("citation check failed; answer kept unchecked", exc_info=True)
            ctx.validation_errors.append("citation check failed")
            return text
        if result is None:
            return text
        citations, checks = result
        ctx.citations, ctx.citation_checks = citations, checks
        if self.attribute == "mark":
            text = mark_attributed(text, checks)
        if not any(c.verdict in BAD_VERDICTS for c in checks):
            return text
        if self.policy == "strip":
            out = _rewrite(text, checks, lambda _s, _c: "")
            if out is None:
                out = _rebuild(checks, lambda c: None if c.verdict in BAD_VERDICTS else c.text,
                               self.attribute == "mark")
            out = re.sub(r"[ \t]{2,}", " ", re.sub(r"\n{3,}", "\n\n", out)).strip()
            ctx.citations_stripped = sum(c.verdict in BAD_VERDICTS for c in checks)
            return out if re.search(r"\w", out) else STRIPPED_ALL
        # annotate (and reask's leftovers): the text stays the model's; the verdicts travel in
        # ctx.citation_checks to the reply record, and the UI renders them (issue 13: a
        # marker written into the text re-entered later prompts and the model copied it).
        return text
