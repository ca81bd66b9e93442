"""Out-of-scope detection against the deployment's own scope statement.

Why: a cooking assistant that happily writes tax advice is a liability, and a tiny local
model answers off-topic questions worst. The check is cheap and offline: MiniLM cosine
between the message and the scope statement (and each topic phrase in it, since one
averaged vector blurs a list of topics), plus keywords that put a message in scope
outright. Short chit-chat ("hi", "thanks") is never out of scope. The action is per
deployment: ``flag`` (a note in the audit trail, the turn goes on) or ``refuse`` (a
friendly ``InputRejected`` before anything is stored).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.errors import InputRejected
from assistant.turn import ScopeNote
from guardrails.base import Guard, GuardContext
from guardrails.claims import content_stems, stem, tokens

__all__ = ["ScopeGuard", "ScopeResult"]

_PHRASES = re.compile(r"[,;:.]|\band\b|\bor\b", re.IGNORECASE)
MIN_CONTENT_WORDS = 2  # fewer ("hi", "thanks!"): chit-chat, never judged


@dataclass(frozen=True)
class ScopeResult:
    in_scope: bool
    similarity: float
    reason: str  # "keyword", "similarity", "short", or "out of scope"


class ScopeGuard(Guard):
    """``before_input`` hook: flag or refuse messages outside ``statement``."""

    name = "scope"

    def __init__(self, statement: str, *, keywords: Sequence[str] = (), threshold: float = 0.25,
                 action: str = "flag", encoder: Any = None) -> None:
        if not statement.strip():
            raise ValueError("the scope statement is empty")
        if action not in ("flag", "refuse"):
            raise ValueError(f"scope action must be 'flag' or 'refuse', got {action!r}")
        self.statement, self.threshold, self.action = statement.strip(), threshold, action
        self.keywords = {stem(k) for kw in keywords for k in tokens(kw)}
        self._encoder = encoder
        self._anchors: np.ndarray | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ScopeGuard | None:
        """The guard a deployment configured, or ``None`` without a scope statement."""
        if not (settings.scope_statement or "").strip():
            return None
        return cls(settings.scope_statement, keywords=settings.scope_keywords.split(","),
                   threshold=settings.scope_threshold, action=settings.scope_action)

    def _vectors(self) -> tuple[Any, np.ndarray]:
        """Encoder and anchor vectors (the statement and its topic phrases), built once."""
        if self._encoder is None:
            from memory.minilm import get_encoder

            self._encoder = get_encoder()
        if self._anchors is None:
            phrases = [p.strip() for p in _PHRASES.split(self.statement) if len(content_stems(p)) >= 1]
            self._anchors = np.asarray(self._encoder.encode([self.statement, *phrases]), dtype=np.float32)
        return self._encoder, self._anchors

    def check(self, text: str) -> ScopeResult:
        """Is ``text`` within scope? Keywords first, then similarity."""
        stems = content_stems(text)
        if stems & self.keywords:
            return ScopeResult(True, 1.0, "keyword")
        if len(stems) < MIN_CONTENT_WORDS:
            return ScopeResult(True, 1.0, "short")
        encoder, anchors = self._vectors()
        vec = np.asarray(encoder.encode([text[:2000]]), dtype=np.float32)[0]
        similarity = float(np.max(anchors @ vec))
        ok = similarity >= self.threshold
        return ScopeResult(ok, round(similarity, 4), "similarity" if ok else "out of scope")

    def before_input(self, ctx: GuardContext, text: str) -> str:
        result = self.check(text)
        ctx.scope = ScopeNote(result.in_scope, result.similarity, result.reason, self.action)
        if not result.in_scope and self.action == "refuse":
            raise InputRejected(
                f"out of scope (similarity {result.similarity:.2f} < {self.threshold})",
                user_message=f"Sorry, I can only help with this: {self.statement} "
                             "Could you ask something along those lines?",
                guard=self.name)
        return text
