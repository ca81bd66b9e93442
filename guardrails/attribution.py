"""Post-hoc attribution: cite, on the model's behalf, the shown source that supports an
uncited factual sentence.

Why: small local models (SmolLM2-135M) seldom write ``[n]`` markers even when the prompt
shows numbered sources and asks for them, so their grounded answers would carry no
citations at all. The sentence may still be true to a source; lastmile can find out with
the same deterministic check it runs on the model's own citations.

How: every sentence ``verify_citations`` left ``uncited`` *and* judged a claim
(``guardrails.claims.is_claim``: greetings, questions and filler are left alone) is
paired with the shown sources that share content words with it (at most
``MAX_CANDIDATES``), and each pair is verified as if the model had cited it -- content-word
and entity coverage, numbers, negation, antonyms, role swaps, MiniLM similarity -- in ONE
batched ``verify_citations`` call. The best-scoring candidate whose verdict is
``supported`` and whose score reaches ``THRESHOLD + MARGIN`` is attributed.

Honesty: an attributed citation is verified *by construction* -- it exists only because
the check passed, so its ``supported`` verdict is not independent evidence and is marked
``origin="attributed"`` (never ``"model"``). Its score is the one the check measured,
never rounded up. Trying several sources and keeping the best is a multiple comparison,
so attribution asks ``MARGIN`` more than a model citation needs. A sentence no source
supports stays ``uncited`` (flagged, and counted against groundedness).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from guardrails.citations import (
    THRESHOLD,
    CitationReport,
    CitedSentence,
    verify_citations,
)
from guardrails.claims import content_stems, parse_markers

__all__ = ["MARGIN", "MAX_CANDIDATES", "MODES", "Attribution", "attribute"]

MODES = ("mark", "panel", "off")  # mark: [n] added to the text; panel: citations only; off
MARGIN = 0.05
MAX_CANDIDATES = 2  # sources tried per sentence, most content words in common first

Verify = Callable[[str, Mapping[str, str]], CitationReport]


@dataclass(frozen=True)
class Attribution:
    """The source lastmile found for an uncited sentence (index into the report)."""

    index: int
    source_id: str
    score: float
    evidence: str | None
    span: tuple[str, int, int] | None = None


def _candidates(text: str, sources: Mapping[str, str], limit: int) -> list[str]:
    """Source ids sharing content words with ``text``, most shared first (cheap prefilter:
    a source with nothing in common cannot pass the coverage and similarity checks)."""
    stems = content_stems(text)
    if not stems:
        return []
    shared = {sid: len(stems & content_stems(body)) for sid, body in sources.items()}
    ranked = sorted((sid for sid, n in shared.items() if n), key=lambda sid: -shared[sid])
    return ranked[:limit]


def attribute(sentences: Sequence[CitedSentence], sources: Mapping[str, str], *,
              verify: Verify = verify_citations, margin: float = MARGIN,
              max_candidates: int = MAX_CANDIDATES) -> list[Attribution]:
    """Attributions for the uncited claim sentences a shown source supports (see module)."""
    probes: list[tuple[int, str]] = []
    for i, s in enumerate(sentences):
        if s.verdict == "uncited" and s.claim and not s.cited and "\n" not in s.text:
            probes += [(i, sid) for sid in _candidates(s.text, sources, max_candidates)]
    if not probes:
        return []
    # One line per (sentence, source); a newline always ends a sentence, so each line
    # comes back as exactly one cited sentence -- unless the splitter cuts it, in which
    # case the cited piece no longer equals the sentence and the probe is dropped.
    answer = "\n".join(f"{sentences[i].text} [{sid}]" for i, sid in probes)
    checked = [s for s in verify(answer, sources).sentences if s.cited]
    if len(checked) != len(probes):
        return []  # cannot pair results with probes: attribute nothing rather than guess
    best: dict[int, Attribution] = {}
    for (i, sid), got in zip(probes, checked, strict=True):
        if got.cited != [sid] or got.text != parse_markers(sentences[i].text)[0]:
            continue
        if got.verdict != "supported" or got.score < THRESHOLD + margin:
            continue
        if i not in best or got.score > best[i].score:
            best[i] = Attribution(i, sid, float(got.score), got.evidence, got.span)
    return [best[i] for i in sorted(best)]
