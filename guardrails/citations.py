"""Runtime citation verification: does each cited sentence of an answer follow from the
sources it cites? No LLM call -- lexical checks plus MiniLM similarity.

Rules, per sentence of the answer (see ``guardrails.claims`` for the helpers):

* cites an id missing from ``sources``      -> ``invalid_citation`` (score 0)
* cites nothing, and is a factual claim      -> ``uncited`` (score 0, flagged)
* cites nothing, and is not a claim (greeting, question, "Here is what I found:",
  "I hope this helps")                       -> ``uncited`` with ``claim=False``,
  score 1, *not* flagged and left out of ``groundedness``
* cites valid ids: the cited sources are cut into windows (each sentence and each pair
  of adjacent sentences; with several ids, also the union of each source's best window;
  with a claim of two or more clauses, also the union of each clause's best sentence of a
  source, since a long claim may take its parts from sentences far apart).
  For each window: ``soft = W_COS * cosine(claim, window) + (1 - W_COS) * coverage`` where
  coverage is the share of the claim's content words (light stemming) found in the
  window. Hard checks per window: every number in the claim is in the window, bound to
  the same unit ("1,000" = "1000", "5%" = "5 percent", "twenty-six" = 26; within 5% after
  "about"; an ISO date "2018-06-30" also reads "30 June 2018"), every capitalised name
  or acronym appears, and no antonym or direction swap
  ("rose" vs "fell", "raised" vs "held at"). A window failing one scores
  ``soft * HARD_PENALTY`` (``ELSEWHERE_PENALTY`` when its only failures are names or
  numbers the cited text has in another sentence); the best window is the evidence. Then,
  against the whole cited text (``guardrails.roles``): negation scope, role swaps between
  names/numbers, and partial support (a clause of the claim the sources do not cover) each multiply the
  score by ``HARD_PENALTY`` again. ``supported`` if the score is at least ``THRESHOLD``.
  Last, graded partial support: the score is scaled by the square of the claim's mean
  clause coverage (share of each clause's words the cited text mentions anywhere,
  relative to ``FULL_COVER``) without changing the verdict -- a supported claim keeps at
  least ``THRESHOLD`` -- so the score ranks how fully the sources mention the claim; a
  flagged claim failing in several ways (names, numbers, partial, ...) also gets
  ``KIND_FACTOR`` per kind beyond the first.

Binding and parts (``guardrails.frames``): each atomic part of the claim must have its
values bound to the same qualifier as in the cited source ("45 EUR" with "within", not
"outside"); a wrong binding is a hard failure (reason ``binding:<term>``) and the evidence
is the source clause holding the claim's qualifier. Bad input never raises: a claim over
``MAX_CLAIM_WORDS`` words, binary text, or cited sources without a sentence give
``not_checkable``; a score is always finite.

A bare answer ("45 EUR [1]") names no frame of its own: it means the question's. With
``question`` given, a cited sentence of at most ``FRAGMENT_WORDS`` words and two content
words, answering a wh-question, is checked as the question's core plus the answer ("the
per diem outside the EU 45 EUR"), so its value is bound to the qualifier the person asked
about, not to whichever clause of the source happens to hold it.

The calibrated verdict, ``CitedSentence.status`` (``STATUSES``), is what a person reads:
``supported``; ``partial`` (some atomic parts supported, others not); ``not_supported``
(cited and failing, or an uncited claim); ``not_checkable`` (nothing to check: filler,
or bad input); ``invalid_citation``. ``verdict`` keeps the older four values
(``VERDICTS``) for existing callers. ``span`` is ``(source id, start, end)``: where in
that source the evidence sentence sits, for highlighting. Relevance to the question is
``guardrails.relevance.relevance``.

``W_COS`` and ``THRESHOLD`` were calibrated on the dev splits of the labelled set
(``python benchmarks/citations.py``; held-out figures in docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from guardrails.claims import (
    content_stems,
    entities,
    has_antonym_clash,
    is_claim,
    name_stems,
    numbers_match,
    parse_markers,
    split_sentences,
    stem,
    tokens,
)
from guardrails.frames import bound_unit, check_binding, decompose, units
from guardrails.roles import (
    acronym_of,
    clause_coverage,
    clauses,
    direction_clash,
    negation_clash,
    role_swaps,
    uncovered_clauses,
)

__all__ = ["FRAGMENT_WORDS", "MAX_CLAIM_WORDS", "QUESTION_CORE_WORDS", "STATUSES", "THRESHOLD", "VERDICTS",
           "CitationReport", "CitedSentence", "verify_citations"]

VERDICTS = ("supported", "unsupported", "uncited", "invalid_citation")
STATUSES = ("supported", "partial", "not_supported", "not_checkable", "invalid_citation")
MAX_CLAIM_WORDS = 400
W_COS = 0.7
THRESHOLD = 0.55
HARD_PENALTY = 0.4
#: A window's factor when its only failures are names or numbers found elsewhere in the cited text.
ELSEWHERE_PENALTY = 1.0
#: A cited sentence this short, with at most two content words, is checked in the question's frame.
FRAGMENT_WORDS = 6
_PREFILTER = 2  # lexically best windows per cited source that get embedded
#: Mean clause coverage (share of each clause's words the cited text mentions) that counts
#: as full; below it the score falls with the square of the shortfall (``_cover_factor``).
FULL_COVER = 0.9
#: Each kind of failure beyond the first scales a flagged score by this (verdicts unchanged).
KIND_FACTOR = 0.6


@dataclass
class CitedSentence:
    text: str  # the sentence without its citation markers
    cited: list[str]
    verdict: str
    score: float
    claim: bool = True
    evidence: str | None = None
    reasons: list[str] = field(default_factory=list)
    #: The calibrated verdict (``STATUSES``), see the module docstring.
    status: str = ""
    #: (source id, start, end) of the evidence sentence in that source.
    span: tuple[str, int, int] | None = None
    #: The claim's atomic parts (one item when it is not compound).
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = _status(self)


@dataclass
class CitationReport:
    sentences: list[CitedSentence]

    @property
    def flagged(self) -> list[CitedSentence]:
        """Sentences that need attention: not supported, and a claim."""
        return [s for s in self.sentences if s.verdict != "supported" and s.claim]

    @property
    def groundedness(self) -> float:
        """Share of claim sentences that are supported (1.0 when there are none)."""
        claims = [s for s in self.sentences if s.claim]
        return 1.0 if not claims else sum(s.verdict == "supported" for s in claims) / len(claims)

    def to_dict(self) -> dict[str, Any]:
        return {"groundedness": self.groundedness, "flagged": len(self.flagged),
                "sentences": [asdict(s) for s in self.sentences]}


def _status(s: CitedSentence) -> str:
    if s.verdict == "invalid_citation":
        return "invalid_citation"
    if s.verdict == "supported":
        return "supported"
    if not s.claim or any(r.startswith("not_checkable") for r in s.reasons):
        return "not_checkable"
    # Partly: some atomic parts are missing or wrongly bound, and nothing contradicts the
    # claim as a whole (a wrong entity, number or negation makes all of it not supported).
    per_part = ("partial", "part:", "binding:") + (  # a role swap a wrong binding explains
        ("role:",) if any(r.startswith("binding:") for r in s.reasons) else ())
    whole = [r for r in s.reasons if not r.startswith(per_part)]
    if s.verdict == "unsupported" and not whole and any(
            r.startswith(("partial", "part:")) for r in s.reasons):
        return "partial"
    return "not_supported"


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")


def _unreadable(text: str, *, claim: bool = True) -> str | None:
    """Why ``text`` cannot be checked as a sentence, or (``claim=False``) read as a
    source (None: it can). Only a claim has a length limit: a source is long."""
    if claim and len(text.split()) > MAX_CLAIM_WORDS:
        return f"not_checkable:longer than {MAX_CLAIM_WORDS} words"
    if text and len(_CONTROL.findall(text)) > 0.02 * len(text):
        return "not_checkable:binary text"
    if not re.search(r"[^\W\d_]", text):
        return "not_checkable:no words"
    return None


def _locate(srcs: Mapping[str, str], cited: Sequence[str], evidence: str) -> tuple[str, int, int] | None:
    """Where the evidence (a source sentence, or two) sits in the cited sources."""
    for cid in cited:
        body = srcs.get(cid, "")
        at = body.find(evidence) if evidence else -1
        if at >= 0:
            return (cid, at, at + len(evidence))
    return None


def _windows(sents: Sequence[str]) -> list[str]:
    return [*sents, *(f"{a} {b}" for a, b in pairwise(sents))]


def _coverage(claim_stems: set[str], window: str) -> float:
    return 1.0 if not claim_stems else len(claim_stems & content_stems(window)) / len(claim_stems)


def _part_union(claim: str, sents: Sequence[str]) -> str | None:
    """Each clause's lexically best sentence, joined in source order (None with fewer than
    two): a long claim may take its parts from sentences far apart in one source."""
    parts = [c for c in clauses(claim) if len(content_stems(c)) >= 2]
    if len(parts) < 2 or len(sents) < 2:
        return None
    have = [content_stems(s) for s in sents]
    picks = set()
    for part in parts:
        stems = content_stems(part)
        hits = [len(stems & h) for h in have]
        top = max(range(len(sents)), key=lambda i: (hits[i], -len(sents[i])))
        if hits[top]:
            picks.add(top)
    return " ".join(sents[i] for i in sorted(picks)) if len(picks) >= 2 else None


def _cover_factor(cover: Sequence[tuple[str, int, float]]) -> float:
    """Graded partial support: a claim whose parts the cited text mentions only in part is
    less likely supported as a whole, even when its best window matches well. Mean share
    over clauses of two or more content words, relative to ``FULL_COVER``, squared."""
    shares = [c for _, n, c in cover if n >= 2]
    if not shares:
        return 1.0
    return min(1.0, sum(shares) / len(shares) / FULL_COVER) ** 2


def _graded(score: float, factor: float, threshold: float) -> float:
    """A flagged ``score`` scaled by the cover factor: it ranks how far from supported a
    failing claim is. A supported score stays as measured: post-hoc attribution asks for a
    margin above ``threshold`` (a clamp to the threshold halved its recall)."""
    return score * factor if score < threshold else score


def _penalty(reasons: Sequence[str], named: set[str], numbered: bool = False) -> float:
    """A window's factor for its hard failures. Names the window lacks but the cited text
    has elsewhere (``named``: its token stems), and numbers when the cited text has them all
    (``numbered``), cost ``ELSEWHERE_PENALTY``: a long claim takes its subject from one
    sentence and its facts from another. Wrong bindings and swaps are checked on their own."""
    if not reasons:
        return 1.0
    if all((r.startswith("entity:") and set(r[7:].split(",")) <= named) or (r == "number" and numbered)
           for r in reasons):
        return ELSEWHERE_PENALTY
    return HARD_PENALTY


_ISO_DATE = re.compile(r"\b((?:1[5-9]|20)\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?:T[\d:.]+Z?)?\b")
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")


_MONTH_ABBR = re.compile(r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\b\.?(\s*)(?=\d)")


def spell_dates(text: str) -> str:
    """Dates also written out: ISO ("2018-06-30" -> "30 June 2018": a page's metadata dates
    it that way, a claim says "in June 2018") and abbreviated months before a day or year
    ("Nov 10, 2018" -> "November 10, 2018")."""
    text = _ISO_DATE.sub(lambda m: f"{int(m[3])} {_MONTH_NAMES[int(m[2]) - 1]} {m[1]}", text)
    return _MONTH_ABBR.sub(lambda m: next(n for n in _MONTH_NAMES if n.startswith(m[1][:3])) + (m[2] or " "),
                           text)


def _hard_failures(claim: str, window: str, known: set[str], lead: str = "") -> list[str]:
    """Why ``window`` cannot support ``claim``; names may also come from ``lead`` (the cited
    sources' first sentences), since later sentences say "she" / "it" for the subject."""
    reasons = []
    window, lead = spell_dates(window), spell_dates(lead)
    if not numbers_match(claim, window) and not numbers_match(claim, f"{window} {lead}"):
        reasons.append("number")
    have = {stem(t) for t in tokens(window + " " + lead)}
    prefixes = {h[:4] for h in have if len(h) >= 4}  # "Chinese" ~ "China", "Nepali" ~ "Nepal"
    acronyms = {t.lower(): t for t in (re.sub(r"[’']s$", "", t) for t in tokens(claim)) if t.isupper()}
    missing = sorted(e for e in entities(claim, known) if e not in have and e[:4] not in prefixes
                     and not acronym_of(acronyms.get(e, ""), f"{window} {lead}"))
    if missing:
        reasons.append("entity:" + ",".join(missing))
    if has_antonym_clash(claim, window) or direction_clash(claim, window):
        reasons.append("antonym")
    return reasons


def _encoder() -> Any:
    from memory.minilm import get_encoder

    return get_encoder()


#: A wh-question and its verb ("What is", "How much does", "Which"): what is left is the
#: frame the answer fills. A yes/no question is no frame: "No [1]" to "Is it 45 EUR?" does
#: not state 45 EUR.
_WH = re.compile(r"^\s*(?:(?:and|so|but|also|ok(?:ay)?|then|now|well)\b[\s,]*)*"
                 r"(?:what|which|who|whom|whose|when|where|how(?:\s+(?:much|many|long|far|often|"
                 r"old|big|large|high))?)(?:'s|\s+(?:is|are|was|were|do|does|did|will|would|can|could|"
                 r"should|shall|may|has|have|had))?\b\s*", re.IGNORECASE)
#: A question longer than this is no frame for a bare answer (its core would be the claim).
QUESTION_CORE_WORDS = 20


def _in_frame(text: str, question: str | None) -> str:
    """``text`` as checked: a bare answer to a wh-question gets the question's core in front."""
    if not question or len(tokens(text)) > FRAGMENT_WORDS or len(content_stems(text)) > 2:
        return text
    asked = [s for s in split_sentences(question) if s.rstrip().endswith("?")] or split_sentences(question)
    last = asked[-1].strip() if asked else ""
    if not (found := _WH.match(last)):
        return text
    core = last[found.end():].strip().rstrip("?!. ").strip()
    if not core or len(tokens(core)) > QUESTION_CORE_WORDS or content_stems(core) <= content_stems(text):
        return text
    return f"{core} {text}"


def verify_citations(answer: str, sources: Mapping[str, str], *, encoder: Any = None,
                     threshold: float | None = None, question: str | None = None) -> CitationReport:
    """Check every sentence of ``answer`` against the sources it cites (ids as strings);
    ``question``, the message the answer replies to, frames bare answers (module docstring)."""
    threshold = THRESHOLD if threshold is None else threshold
    srcs = {str(k): v if isinstance(v, str) else str(v or "") for k, v in sources.items()}
    sentences = {k: split_sentences(v) or [v] for k, v in srcs.items()}
    windows = {k: _windows(s) for k, s in sentences.items()}
    items: list[CitedSentence] = []
    pending: list[tuple[CitedSentence, str, list[str]]] = []  # (item, claim as checked, windows)
    for raw in split_sentences(answer):
        text, cited = parse_markers(raw)
        if not text and not cited:
            continue
        if not cited:
            factual = is_claim(text)
            items.append(CitedSentence(text, [], "uncited", 0.0 if factual else 1.0, factual))
            continue
        bad = [c for c in cited if c not in srcs]
        if bad:
            items.append(CitedSentence(text, cited, "invalid_citation", 0.0,
                                       reasons=["unknown id:" + ",".join(bad)]))
            continue
        readable = any(_unreadable(srcs[c][:20_000], claim=False) is None for c in cited)
        why = _unreadable(text) or (None if readable else "not_checkable:no sentence in the sources")
        if why:
            items.append(CitedSentence(text, cited, "unsupported", 0.0, reasons=[why]))
            continue
        claim = _in_frame(text, question)
        stems = content_stems(claim)
        cands: list[str] = []
        tops = []
        for c in cited:
            ranked = sorted(windows[c], key=lambda w: (-(_coverage(stems, w) + numbers_match(claim, w)),
                                                       len(w)))
            cands += ranked[:_PREFILTER]
            tops.append(ranked[0])
            if union := _part_union(claim, sentences[c]):
                cands.append(union)
        if len(cited) > 1:
            cands.append(" ".join(tops))
        item = CitedSentence(text, cited, "unsupported", 0.0)
        items.append(item)
        pending.append((item, claim, list(dict.fromkeys(cands))))
    if pending:
        known = set().union(*(name_stems(v) for v in srcs.values()))
        leads = {k: (split_sentences(v) or [""])[0] for k, v in srcs.items()}
        _score(pending, encoder or _encoder(), threshold, known, leads, srcs)
    return CitationReport(items)


def _flat(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def _verbatim(claim: str, cited: Sequence[str]) -> bool:
    """True when the claim's words, in order, are a whole stretch of one cited text."""
    flat = _flat(claim)
    return len(flat.split()) >= 3 and any(f" {flat} " in f" {_flat(t)} " for t in cited)


def _score(pending: Sequence[tuple[CitedSentence, str, list[str]]], encoder: Any, threshold: float,
           known: set[str], leads: Mapping[str, str], srcs: Mapping[str, str]) -> None:
    """One batched encode for all claims (as checked) and candidate windows of the answer."""
    texts = list(dict.fromkeys([c for _, c, _ in pending] + [w for _, _, ws in pending for w in ws]))
    index = {t: n for n, t in enumerate(texts)}
    vecs = np.asarray(encoder.encode(texts), dtype=np.float32)
    for item, claim, cands in pending:
        stems = content_stems(claim)
        q = vecs[index[claim]]
        lead = " ".join(leads[c] for c in item.cited)
        cited_text = " ".join(srcs[c] for c in item.cited)
        spelled = spell_dates(cited_text)
        named = {stem(t) for t in tokens(spelled)}
        numbered = numbers_match(claim, spelled)
        best: tuple[float, str, list[str]] = (-1.0, "", [])
        for w in cands:
            cos = float(vecs[index[w]] @ q)
            soft = W_COS * cos + (1 - W_COS) * _coverage(stems, w)
            reasons = _hard_failures(claim, w, known, lead)
            score = soft * _penalty(reasons, named, numbered)
            if score > best[0]:
                best = (score, w, reasons)
        # Contradictions are looked for in the whole cited text, not just the best window:
        # "X was not included" two sentences away still contradicts "X was included".
        swaps = role_swaps(claim, cited_text, known)
        against = (["negation"] if negation_clash(claim, cited_text) else []) + (
            ["role:" + ",".join(swaps)] if swaps else [])
        cover = clause_coverage(claim, [srcs[c] for c in item.cited])
        if gaps := uncovered_clauses(claim, [], cover=cover):
            against.append("partial:" + "|".join(gaps))
        evidence, span = best[1], _locate(srcs, item.cited, best[1])
        item.parts = decompose(claim)
        owned = [(c, u) for c in item.cited for u in units(srcs[c])]
        pool = [u for _, u in owned]
        # A claim that says what one cited sentence says, word for word, binds its values
        # exactly as the source does: there is no rival qualifier to mistake.
        wrong = [] if _verbatim(claim, [srcs[c] for c in item.cited]) else [
            (p, b) for p in item.parts if (b := check_binding(p, pool)) is not None]
        if not wrong and all(bound_unit(p, pool) for p in item.parts):
            # Every part's values sit together in one clause of the source: the frame
            # check is more specific than the role heuristic, whose number swaps it
            # explains. A swapped name ("China topped ..." where the United States did)
            # is no value of a frame: it stays.
            against = [r for r in against if not (r.startswith("role:") and all(
                n.isdigit() for n in r[5:].split(",")))]
        if wrong:
            bind = wrong[0][1]
            against.append("binding:" + bind.term.lstrip("#"))
            if len(wrong) < len(item.parts):
                against.append("part:" + "|".join(p for p, _ in wrong))
            cid = next(c for c, u in owned if u is bind.evidence)
            span = (cid, bind.evidence.start, bind.evidence.end)
            evidence = srcs[cid][span[1]:span[2]]
        if against:
            best = (best[0] * HARD_PENALTY, best[1], [*best[2], *against])
        kinds = {r.split(":")[0] for r in best[2]}
        score = _graded(best[0], _cover_factor(cover) * KIND_FACTOR ** max(0, len(kinds) - 1), threshold)
        score = score if np.isfinite(score) else 0.0
        item.score, item.evidence, item.reasons = round(float(score), 4), evidence, best[2]
        item.span = span
        item.verdict = "supported" if score >= threshold else "unsupported"
        if item.verdict == "unsupported" and not item.reasons:
            item.reasons = ["low similarity"]
        item.status = _status(item)
