"""Does an answer sentence answer the question? A supported sentence can still be off-question.

Why: "The daily per diem is 45 EUR within the EU" is supported by the travel policy, but as
the answer to "Which class can I book for a 4-hour flight?" it is no answer; shown with a
green check it looks like one. The product shows a supported but off-question answer as
"not a confident answer".

How (no model call, cheap): the question's *focus* terms -- its content words (light stems)
and the frame values it names (numbers, tier words such as "class", "economy", range words)
-- are compared with the sentence's, and MiniLM cosine between the two is mixed in when an
encoder is given. ``on_question`` is False when the sentence shares no focus term with the
question and the cosine is low. A question with no content words (``"and?"``) cannot be
judged: ``on_question`` is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from guardrails.claims import content_stems
from guardrails.frames import frame_terms

__all__ = ["MIN_COSINE", "Relevance", "relevance"]

MIN_COSINE = 0.35
_WH = {"which", "what", "how", "when", "where", "who", "whom", "whose", "why", "many", "much", "long"}


@dataclass(frozen=True)
class Relevance:
    """``on_question``: the sentence addresses the question (None: cannot tell)."""

    on_question: bool | None
    overlap: float
    cosine: float | None
    shared: tuple[str, ...] = ()


def _focus(text: str) -> set[str]:
    values, plain = frame_terms(text)
    return (content_stems(text) | plain | {v for v in values if v[0].isalpha()}) - _WH


def relevance(question: str, sentence: str, *, encoder: Any = None) -> Relevance:
    """How far ``sentence`` answers ``question`` (see the module docstring)."""
    q, s = _focus(question or ""), _focus(sentence or "")
    if not q or not s:
        return Relevance(None, 0.0, None)
    shared = q & s
    overlap = len(shared) / len(q)
    cos: float | None = None
    if encoder is not None:
        vecs = np.asarray(encoder.encode([question, sentence]), dtype=np.float32)
        value = float(vecs[0] @ vecs[1])
        cos = value if np.isfinite(value) else None
    # Sharing only the topic word ("flight") while the question asks about another frame
    # slot is not enough: ask for half of the focus terms, or a close embedding.
    on = overlap >= 0.5 or (cos is not None and cos >= MIN_COSINE + 0.2) or (
        bool(shared) and (cos is None or cos >= MIN_COSINE))
    return Relevance(on, round(overlap, 4), None if cos is None else round(cos, 4), tuple(sorted(shared)))
