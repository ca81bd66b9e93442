"""The population stability index and the small classifiers drift bins inputs with.

PSI = Σ (recent − base) · ln(recent / base) over bins; by the usual reading below 0.1
is stable, 0.1–0.25 a moderate shift worth a look, above 0.25 a significant one. Numeric
signals are binned at the baseline's deciles (so each baseline bin holds about a tenth),
categorical ones by their label, rates as a two-bin yes/no distribution.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["ALERT", "WARN", "guess_language", "level", "psi", "psi_categorical", "psi_numeric",
           "psi_rate"]

WARN, ALERT = 0.1, 0.25
#: A bin empty in one window would make the log infinite; it counts as this share instead.
FLOOR = 1e-4


def level(value: float | None) -> str:
    """ok / warn / alert for one PSI (``None``, not measurable, reads ok)."""
    if value is None or value < WARN:
        return "ok"
    return "warn" if value < ALERT else "alert"


def psi(base: Sequence[float], recent: Sequence[float]) -> float:
    """PSI of two share vectors over the same bins (each normalised to sum to 1)."""
    b = np.maximum(np.asarray(base, dtype=float) / max(sum(base), 1e-12), FLOOR)
    r = np.maximum(np.asarray(recent, dtype=float) / max(sum(recent), 1e-12), FLOOR)
    return round(float(np.sum((r - b) * np.log(r / b))), 4)


def psi_numeric(base: Sequence[float], recent: Sequence[float], bins: int | None = None) -> float:
    """PSI of a numeric signal, binned at the baseline's quantiles: deciles once each
    window has 250 items, fewer below (PSI's sampling noise grows with bins / items)."""
    bins = bins or max(2, min(10, min(len(base), len(recent)) // 25))
    edges = np.unique(np.quantile(np.asarray(base, dtype=float), np.linspace(0, 1, bins + 1)[1:-1]))
    b = np.bincount(np.searchsorted(edges, base, side="right"), minlength=len(edges) + 1)
    r = np.bincount(np.searchsorted(edges, recent, side="right"), minlength=len(edges) + 1)
    return psi(b.tolist(), r.tolist())


def psi_categorical(base: Sequence[str], recent: Sequence[str]) -> float:
    """PSI of a label per item (a language, a topic cluster)."""
    labels = sorted(set(base) | set(recent))
    bc, rc = Counter(base), Counter(recent)
    return psi([bc[k] for k in labels], [rc[k] for k in labels])


def psi_rate(base: Sequence[bool], recent: Sequence[bool]) -> float:
    """PSI of a yes/no signal (refusal, fallback, out of scope)."""
    return psi([sum(base), len(base) - sum(base)], [sum(recent), len(recent) - sum(recent)])


_SCRIPTS = (("zh", r"[\u4e00-\u9fff]"), ("ja", r"[\u3040-\u30ff]"), ("ko", r"[\uac00-\ud7af]"),
            ("ru", r"[\u0400-\u04ff]"), ("ar", r"[\u0600-\u06ff]"), ("el", r"[\u0370-\u03ff]"),
            ("he", r"[\u0590-\u05ff]"), ("hi", r"[\u0900-\u097f]"))
_STOPWORDS = {
    "en": "the and is are was what how you your with for this that of to in it do can i my",
    "de": "der die das und ist nicht ich sie wie was mit für ein eine zu auf den dem",
    "fr": "le la les et est une des pas que qui je vous pour dans avec sur du ce",
    "es": "el la los las y es una que por para con como del se mi qué cómo pero",
    "pt": "o a os as e é um uma que não para com como do da em meu você",
    "it": "il lo la gli e è una che non per con come del della sono mi",
    "nl": "de het een en is niet ik je wat hoe met voor van op dat zijn",
}
_WORDS = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}


def guess_language(text: str) -> str:
    """A coarse language label: the script for non-Latin text, else the language whose
    common words occur most (``und`` when none do). Enough to see a language's share
    move; not a language identifier."""
    for lang, pattern in _SCRIPTS:
        if len(re.findall(pattern, text)) >= max(2, len(text) // 10):
            return lang
    words = re.findall(r"[^\W\d_]+", text.lower())
    if not words:
        return "und"
    scores = {lang: sum(w in vocab for w in words) for lang, vocab in _WORDS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] else "und"
