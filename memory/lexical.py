"""Per-user BM25 (the ``bm25s`` library) over memory texts.

Why per user: a user's memories are scored against that user's own corpus statistics
and a query can only ever see that user's index, so a cross-user result is impossible
by construction. bm25s has no incremental add, so an index is rebuilt lazily, on the
first query after that user's items changed; tokens are cached per item, so a rebuild
of 10,000 turns costs a few tens of milliseconds and never re-tokenises.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import bm25s
import numpy as np
import Stemmer

__all__ = ["STOPWORDS", "LexicalIndex", "tokenize"]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# English function words plus question words: "when did Caroline go to the support group?"
# must match on "caroline support group", not on "when"/"did" (query normalisation).
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing don down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
also yeah oh hey hi ok okay really s t ll ve re d m
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_stemmer = Stemmer.Stemmer("english")
_stem_cache: dict[str, str] = {}


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, Snowball-stemmed word tokens (possessives folded)."""
    words = [w.split("'", 1)[0] for w in _WORD.findall(text.lower())]
    out = []
    for w in words:
        if w in STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        stem = _stem_cache.get(w)
        if stem is None:
            stem = _stem_cache.setdefault(w, _stemmer.stemWord(w))
        out.append(stem)
    return out


@dataclass
class _UserIndex:
    tokens: dict[str, list[str]] = field(default_factory=dict)  # item id -> tokens
    ids: list[str] = field(default_factory=list)  # row order of the built index
    model: bm25s.BM25 | None = None
    vocab: frozenset[str] = frozenset()
    dirty: bool = True


class LexicalIndex:
    """BM25 per user; ``search`` returns ``(item_id, score)`` best first, scores > 0 only."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, method: str = "lucene") -> None:
        self.k1, self.b, self.method = k1, b, method
        self._users: dict[str, _UserIndex] = {}
        self._lock = threading.Lock()

    def add(self, user_id: str, items: Iterable[tuple[str, str]]) -> None:
        """Add or replace ``(item_id, text)`` pairs for one user."""
        with self._lock:
            user = self._users.setdefault(user_id, _UserIndex())
            for item_id, text in items:
                user.tokens[item_id] = tokenize(text)
            user.dirty = True

    def remove(self, user_id: str, item_ids: Iterable[str]) -> None:
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                return
            for item_id in item_ids:
                user.tokens.pop(item_id, None)
            user.dirty = True

    def drop_user(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)

    def count(self, user_id: str) -> int:
        user = self._users.get(user_id)
        return len(user.tokens) if user else 0

    def _built(self, user_id: str) -> tuple[list[str], bm25s.BM25, frozenset[str]] | None:
        """A consistent snapshot (row ids, model, vocabulary), rebuilt first if stale."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None or not user.tokens:
                return None
            if user.dirty:
                ids = list(user.tokens)
                model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
                # An empty token list would make bm25s choke; "" never matches a query token.
                model.index([user.tokens[i] or [""] for i in ids], show_progress=False)
                user.ids, user.model = ids, model
                user.vocab = frozenset(model.vocab_dict)
                user.dirty = False
            return user.ids, user.model, user.vocab  # type: ignore[return-value]

    def search(self, user_id: str, query: str | Sequence[str], k: int) -> list[tuple[str, float]]:
        built = self._built(user_id)
        if built is None or k <= 0:
            return []
        ids, model, vocab = built
        terms = tokenize(query) if isinstance(query, str) else list(query)
        terms = [t for t in terms if t and t in vocab]
        if not terms:
            return []
        scores = np.asarray(model.get_scores(terms))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(ids[i], float(scores[i])) for i in top if scores[i] > 0]
