"""The state of one turn, as typed fields: who it is for, where its text goes, and
what each stage found on the way (sources, checks, timings, guard findings).

It replaces a string-keyed ``notes`` dict that guards, the grounding step and the
orchestrator used to pass between them: a misspelt key was silently a new key, and a
reader could not tell from the code what a turn carries. Guards receive it as
``guardrails.GuardContext`` (the same class). A kernel module: it imports only the
standard library, so every layer may use it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from assistant.protocols import SourceRef
    from assistant.reply import Citation, SentenceCheck

__all__ = ["Destination", "InjectionNote", "ScopeNote", "TurnState"]

#: Where the turn's text goes: a model on this machine, a remote provider (PII is
#: redacted first), or memory only (a fact write outside any chat turn).
Destination = Literal["local", "remote", "memory"]


@dataclass(frozen=True)
class InjectionNote:
    """One prompt-injection finding (also audited): where, which rules, what was done."""

    where: str  # "input" or "retrieval"
    index: int | None
    score: float
    rules: list[str]
    action: str  # "flag" | "block" | "quarantine"
    ref: dict[str, Any] = field(default_factory=dict)  # chunk_id / memory_id of the item


@dataclass(frozen=True)
class ScopeNote:
    """The out-of-scope check's verdict on the input."""

    in_scope: bool
    similarity: float
    reason: str
    action: str


@dataclass
class TurnState:
    """Everything one turn carries between its stages. Defaults mean "nothing yet"."""

    user_id: str
    session_id: str
    destination: Destination = "local"
    #: False skips the reply cache for this turn (e.g. "regenerate").
    cache: bool = True
    #: The sampling seed for this turn's model call (a regenerate draws a fresh one).
    seed: int | None = None
    #: Which document collections this chat may draw on (None: all the user may read).
    collections: tuple[str, ...] | None = None
    #: History imported through ``/v1`` (stored, never answered here).
    imported: bool = False
    #: The user's message this turn answers, as stored (after the input guards): the
    #: citation check reads a bare answer ("45 EUR [1]") in its frame.
    question: str = ""
    # -- context -------------------------------------------------------------------
    #: The numbered sources in the prompt, by their id (for the citation guard).
    sources: dict[str, SourceRef] = field(default_factory=dict)
    #: Memory and document snippets in the prompt (for retrieval-only answers).
    snippets: list[dict[str, Any]] = field(default_factory=list)
    # -- grounding -----------------------------------------------------------------
    citations: list[Citation] | None = None
    citation_checks: list[SentenceCheck] | None = None
    #: Share of claim sentences supported by their sources.
    groundedness: float | None = None
    citations_attributed: int | None = None
    citations_stripped: int | None = None
    #: How many cited sentences the citation judge re-scored (None: no judge ran).
    citations_judged: int | None = None
    #: How many unsupported sentences a re-ask asked the model to correct.
    reasked: int | None = None
    validation_errors: list[str] = field(default_factory=list)
    confidence: float | None = None
    review_status: str | None = None
    #: Why memory writes of this turn were held for review.
    held_for_review: list[str] = field(default_factory=list)
    # -- guard findings ------------------------------------------------------------
    pii: dict[str, int] = field(default_factory=dict)  # findings per kind
    injection: list[InjectionNote] = field(default_factory=list)
    normalize: dict[str, int] = field(default_factory=dict)  # characters changed per kind
    normalize_retrieval: dict[str, int] = field(default_factory=dict)
    scope: ScopeNote | None = None
    # -- timings -------------------------------------------------------------------
    stages_ms: dict[str, float] = field(default_factory=dict)
    guards_ms: dict[str, float] = field(default_factory=dict)
    #: The citation guard's last verification (text, result): the re-ask and the final
    #: check of the same text share it.
    citation_cache: tuple[str, Any] | None = field(default=None, repr=False, compare=False)
    #: The turn's spans (``assistant.telemetry.TurnTrace``), opened at its first stage.
    trace: Any = field(default=None, repr=False, compare=False)
    _legacy: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def notes(self) -> MutableMapping[str, Any]:
        """Deprecated: the old string-keyed view; known keys map to the typed fields."""
        warnings.warn("GuardContext.notes is deprecated; use the typed fields of "
                      "assistant.turn.TurnState", DeprecationWarning, stacklevel=2)
        return _NotesView(self)


_FIELDS = {f.name: f for f in dataclasses.fields(TurnState)
           if f.name not in ("user_id", "session_id", "citation_cache", "trace", "_legacy")}


def _default(name: str) -> Any:
    spec = _FIELDS[name]
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


class _NotesView(MutableMapping[str, Any]):
    """A dict-like window on a ``TurnState`` for guards written against ``notes``: a
    field counts as present once it differs from its default; other keys are kept aside."""

    def __init__(self, state: TurnState) -> None:
        self._state = state

    def __getitem__(self, key: str) -> Any:
        if key in _FIELDS:
            value = getattr(self._state, key)
            if value == _default(key):
                raise KeyError(key)
            return value
        return self._state._legacy[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _FIELDS:
            setattr(self._state, key, value)
        else:
            self._state._legacy[key] = value

    def __delitem__(self, key: str) -> None:
        if key in _FIELDS:
            self[key]  # KeyError when unset, as a dict would
            setattr(self._state, key, _default(key))
        else:
            del self._state._legacy[key]

    def __iter__(self) -> Iterator[str]:
        present = [k for k in _FIELDS if getattr(self._state, k) != _default(k)]
        return iter([*present, *self._state._legacy])

    def __len__(self) -> int:
        return sum(1 for _ in self)
