"""Per-user BM25 (the ``bm25s`` library) over memory texts.

Why per user: a user's memories are scored against that user's own corpus statistics
and a query can only ever see that user's index, so a cross-user result is impossible
by construction. bm25s has no incremental add, so an index is rebuilt lazily, on the
first query after that user's items changed; tokens are cached per item, so a rebuild
of 10,000 turns costs a few tens of milliseconds and never re-tokenises.

Windowed documents (document expansion): an item can be given context items (its
adjacent turns, see ``set_context``); the windowed index scores each item by its own
tokens plus its context's. Why: the retriever shows a hit together with its adjacent
turns, so it should rank the window it shows ("Did you go?" / "Yes, to the pride
parade last Friday" only match "When did Caroline go to the pride parade?" together).

Big indexes rebuild off the turn (issue 14): with ``BACKGROUND_MIN`` items or more, a
query after a few additions (at most ``MAX_BEHIND``) is answered from the previous
build while one background thread rebuilds; rebuilding 10,000 turns on every turn was a
sixth of a loaded server's CPU. What the previous build lacks are the newest turns,
which sit in the prompt's recent window (recall excludes them) and are found by the
dense path meanwhile; a removal always rebuilds before the next query.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import bm25s
import numpy as np
import Stemmer

__all__ = ["BACKGROUND_MIN", "MAX_BEHIND", "STOPWORDS", "LexicalIndex", "tokenize"]

log = logging.getLogger(__name__)

# bm25s sets its own logger to DEBUG when imported, so every index build printed a line
# into `lastmile serve`'s console; its warnings still show.
logging.getLogger("bm25s").setLevel(logging.WARNING)

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
BACKGROUND_MIN = 2_000  # items from which a stale build answers while a rebuild runs
MAX_BEHIND = 512  # most items added since the previous build it may still answer for

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
    context: dict[str, tuple[str, ...]] = field(default_factory=dict)  # item id -> context ids
    built: dict[bool, _Built] = field(default_factory=dict)  # windowed? -> index (lazy)
    stale: dict[bool, _Built] = field(default_factory=dict)  # the build before the last adds
    version: int = 0  # bumped by every change, so a background build knows it is current
    removed_at: int = 0  # the version of the last removal (older builds are never used)


@dataclass(frozen=True)
class _Built:
    ids: list[str]  # row order
    rows: dict[str, int]  # item id -> row
    model: bm25s.BM25
    vocab: frozenset[str]


class LexicalIndex:
    """BM25 per user; ``search`` returns ``(item_id, score)`` best first, scores > 0 only."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, method: str = "lucene") -> None:
        self.k1, self.b, self.method = k1, b, method
        self._users: dict[str, _UserIndex] = {}
        self._lock = threading.Lock()
        self._rebuilding: set[tuple[str, bool]] = set()
        self._pool: ThreadPoolExecutor | None = None

    def add(self, user_id: str, items: Iterable[tuple[str, str]]) -> None:
        """Add or replace ``(item_id, text)`` pairs for one user."""
        with self._lock:
            user = self._users.setdefault(user_id, _UserIndex())
            for item_id, text in items:
                user.tokens[item_id] = tokenize(text)
            self._outdate(user, (False, True))

    def set_context(self, user_id: str, context: Mapping[str, Sequence[str]]) -> None:
        """Set the context items (e.g. adjacent turns) of some of this user's items; the
        windowed index scores each item with its context's tokens added."""
        with self._lock:
            user = self._users.setdefault(user_id, _UserIndex())
            for item_id, others in context.items():
                user.context[item_id] = tuple(o for o in others if o != item_id)
            self._outdate(user, (True,))

    def remove(self, user_id: str, item_ids: Iterable[str]) -> None:
        with self._lock:
            user = self._users.get(user_id)
            if user is None:
                return
            for item_id in item_ids:
                user.tokens.pop(item_id, None)
                user.context.pop(item_id, None)
            user.built.clear()
            user.stale.clear()  # a removed item is never ranked again, not even once
            user.version += 1
            user.removed_at = user.version

    def drop_user(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)

    def count(self, user_id: str) -> int:
        user = self._users.get(user_id)
        return len(user.tokens) if user else 0

    @staticmethod
    def _outdate(user: _UserIndex, kinds: Sequence[bool]) -> None:
        """Items were added: the current builds become the fallbacks of the next ones."""
        for windowed in kinds:
            if windowed in user.built:
                user.stale[windowed] = user.built.pop(windowed)
        user.version += 1

    def _build(self, user: _UserIndex, windowed: bool) -> _Built:
        ids = list(user.tokens)
        docs = [self._document(user, i, windowed) for i in ids]
        model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        # An empty token list would make bm25s choke; "" never matches a query token.
        model.index([d or [""] for d in docs], show_progress=False)
        return _Built(ids, {sid: row for row, sid in enumerate(ids)}, model,
                      frozenset(model.vocab_dict))

    def _built(self, user_id: str, windowed: bool = False) -> _Built | None:
        """A consistent snapshot of this user's index, (re)built first if stale (or, for a
        big index a few additions behind, rebuilt in the background: module docstring)."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None or not user.tokens:
                return None
            if windowed and not any(user.context.values()):
                windowed = False  # no item has context: the windowed index is the plain one
            built = user.built.get(windowed)
            if built is not None:
                return built
            stale = user.stale.get(windowed)
            if stale is not None and len(user.tokens) >= BACKGROUND_MIN \
                    and len(user.tokens) - len(stale.ids) <= MAX_BEHIND:
                self._rebuild_later(user_id, windowed)
                return stale
            built = self._build(user, windowed)
            user.built[windowed] = built
            user.stale.pop(windowed, None)
            return built

    def _rebuild_later(self, user_id: str, windowed: bool) -> None:
        """One background rebuild per (user, kind) at a time; called under the lock."""
        if (user_id, windowed) in self._rebuilding:
            return
        self._rebuilding.add((user_id, windowed))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="bm25-rebuild")
        self._pool.submit(self._rebuild, user_id, windowed)

    def _rebuild(self, user_id: str, windowed: bool) -> None:
        try:
            with self._lock:
                user = self._users.get(user_id)
                if user is None or not user.tokens:
                    return
                version = user.version
                snapshot = _UserIndex(dict(user.tokens), dict(user.context))
            built = self._build(snapshot, windowed)  # outside the lock: queries go on
            with self._lock:
                now = self._users.get(user_id)
                if now is not user:
                    return
                if user.version == version:
                    user.built[windowed] = built
                    user.stale.pop(windowed, None)
                elif windowed not in user.built and user.removed_at <= version:
                    user.stale[windowed] = built  # newer adds came in: a closer fallback
        except Exception:
            log.exception("background BM25 rebuild failed")
        finally:
            with self._lock:
                self._rebuilding.discard((user_id, windowed))

    @staticmethod
    def _document(user: _UserIndex, item_id: str, windowed: bool) -> list[str]:
        own = user.tokens[item_id]
        if not windowed or not user.context.get(item_id):
            return own
        return own + [t for other in user.context[item_id] for t in user.tokens.get(other, ())]

    def scores(self, user_id: str, query: str | Sequence[str], *,
               windowed: bool = False) -> tuple[list[str], dict[str, int], np.ndarray]:
        """BM25 of every item of this user: (row ids, id -> row, scores by row). All zero
        when no query term occurs in the user's memories."""
        built = self._built(user_id, windowed)
        if built is None:
            return [], {}, np.zeros(0)
        terms = tokenize(query) if isinstance(query, str) else list(query)
        terms = [t for t in terms if t and t in built.vocab]
        if not terms:
            return built.ids, built.rows, np.zeros(len(built.ids))
        return built.ids, built.rows, np.asarray(built.model.get_scores(terms), dtype=np.float64)

    def search(self, user_id: str, query: str | Sequence[str], k: int, *,
               windowed: bool = False) -> list[tuple[str, float]]:
        ids, _, scores = self.scores(user_id, query, windowed=windowed)
        if k <= 0 or not len(scores):
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(ids[i], float(scores[i])) for i in top if scores[i] > 0]
