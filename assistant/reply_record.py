"""What a stored reply keeps about how it was made: the JSON in ``messages.context``.

One typed record instead of a dict whose keys the orchestrator wrote and the UI read
back by name: the context report (what went into the prompt), the citations and
confidence of its grounding, every sentence's verdict (``checks``), stage and guard
timings, the notice shown with it, and its review state. ``from_dict`` accepts every
row written before (missing keys are defaults, unknown keys are kept), so no migration
is needed for the record's shape (0016 only moved old markers out of reply text).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.records import ContextReport
from assistant.reply import Citation, SentenceCheck

__all__ = ["ReplyRecord"]

log = logging.getLogger(__name__)

_REPORT_FIELDS = {f.name for f in dataclasses.fields(ContextReport)}
#: Computed by ``ContextReport.to_dict``; not a field to read back.
_DERIVED = {"total_tokens"}


@dataclass(frozen=True)
class ReplyRecord:
    """A stored reply's making-of. Defaults mean "not recorded" (older rows)."""

    report: ContextReport | None = None
    #: ``None``: no citation check ran; ``()``: it ran and found nothing cited.
    citations: tuple[Citation, ...] | None = None
    confidence: float | None = None
    groundedness: float | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)
    guards_ms: dict[str, float] = field(default_factory=dict)
    notice: str | None = None
    review_status: str | None = None
    review_id: int | None = None
    #: Every sentence's verdict (uncited ones too); ``None``: no check ran. Verdicts live
    #: here, never in the stored text: the UI renders them, prompts never see them.
    checks: tuple[SentenceCheck, ...] | None = None
    #: Keys this version does not know (e.g. written by a newer one): kept on a round trip.
    other: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the shape stored since before this record existed."""
        out: dict[str, Any] = dict(self.other)
        if self.report is not None:
            out.update(self.report.to_dict())
        if self.citations is not None:
            out["citations"] = [dataclasses.asdict(c) for c in self.citations]
        if self.checks is not None:
            out["checks"] = [dataclasses.asdict(c) for c in self.checks]
        for name in ("confidence", "groundedness", "review_status", "review_id"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        out.update(stages_ms=dict(self.stages_ms), guards_ms=dict(self.guards_ms),
                   notice=self.notice)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ReplyRecord:
        """The record of a stored row (any age); a malformed part is left at its default."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)} - {"report", "other"}
        return cls(
            report=_report(data), citations=_citations(data.get("citations")),
            checks=_checks(data.get("checks")),
            confidence=_number(data.get("confidence")),
            groundedness=_number(data.get("groundedness")),
            stages_ms=_timings(data.get("stages_ms")), guards_ms=_timings(data.get("guards_ms")),
            notice=str(data["notice"]) if data.get("notice") else None,
            review_status=data.get("review_status") or None,
            review_id=data.get("review_id"),
            other={k: v for k, v in data.items()
                   if k not in known and k not in _REPORT_FIELDS and k not in _DERIVED})


def _report(data: Mapping[str, Any]) -> ContextReport | None:
    values = {k: v for k, v in data.items() if k in _REPORT_FIELDS}
    if not values:
        return None
    try:
        return ContextReport(**values)
    except TypeError:  # a row from before a required field existed: no report, not an error
        return None


def _citations(items: Any) -> tuple[Citation, ...] | None:
    if items is None:
        return None
    out = []
    for item in items if isinstance(items, list) else ():
        try:
            sentences = tuple(
                _sentence(s) for s in item.get("sentences") or ())
            out.append(Citation(**{**item, "sentences": sentences}))
        except (TypeError, AttributeError):
            log.debug("skipping a malformed stored citation: %r", item)
    return tuple(out)


def _sentence(s: Mapping[str, Any]) -> SentenceCheck:
    """A stored sentence check; JSON lists back to the tuples the record holds."""
    span = s.get("span")
    return SentenceCheck(**{**s, "cited": tuple(s.get("cited") or ()),
                            "span": tuple(span) if isinstance(span, (list, tuple)) and len(span) == 3
                            else None,
                            "reasons": tuple(s.get("reasons") or ())})


def _checks(items: Any) -> tuple[SentenceCheck, ...] | None:
    if not isinstance(items, list):
        return None
    out = []
    for s in items:
        try:
            out.append(_sentence(s))
        except (TypeError, AttributeError):
            log.debug("skipping a malformed stored sentence check: %r", s)
    return tuple(out)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _timings(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): float(v or 0) for k, v in value.items() if isinstance(v, (int, float)) or v is None}
