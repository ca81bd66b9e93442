"""The typed turn state, chunk fields and stored reply record (issue 11): rows written
before the record existed still read, and the deprecated string-keyed views still work
for third-party guards and providers, with a warning."""

from __future__ import annotations

import dataclasses

import pytest

from assistant.context import ContextReport
from assistant.providers.base import ModelChunk, Usage
from assistant.reply import Citation, SentenceCheck
from assistant.reply_record import ReplyRecord
from assistant.turn import TurnState
from guardrails import GuardContext


def test_guard_context_is_the_typed_turn_state() -> None:
    ctx = GuardContext("u", "s", destination="remote")
    assert isinstance(ctx, TurnState) and ctx.destination == "remote"
    assert ctx.cache is True and ctx.sources == {} and ctx.validation_errors == []


def test_legacy_notes_view_maps_to_fields_and_warns() -> None:
    ctx = TurnState("u", "s")
    with pytest.warns(DeprecationWarning):
        legacy = ctx.notes
    assert "pii" not in legacy and legacy.get("destination") is None  # defaults count as unset
    legacy["pii"] = {"email": 2}
    legacy["my_guard"] = {"seen": True}  # an unknown key a third-party guard leaves
    assert ctx.pii == {"email": 2}
    assert dict(legacy) == {"pii": {"email": 2}, "my_guard": {"seen": True}}
    del legacy["pii"]
    assert ctx.pii == {} and "pii" not in legacy


def test_chunk_fields_and_legacy_extra_view() -> None:
    plain = ModelChunk(text="hi", usage=Usage(1, 1), finish_reason="stop")
    assert not plain.has_meta()
    restart = ModelChunk(restart=True, discarded="half ", provider="b", reason="boom")
    assert restart.has_meta()
    with pytest.warns(DeprecationWarning):
        assert restart.extra == {"restart": True, "discarded": "half ", "provider": "b",
                                 "reason": "boom"}
    with pytest.warns(DeprecationWarning):
        assert ModelChunk(cached="semantic").extra == {"cache": "semantic"}


def _report(**over: object) -> ContextReport:
    return dataclasses.replace(ContextReport(100, 10, 20, 2, 0, message_ids=[1, 2]), **over)


def test_reply_record_round_trip() -> None:
    check = SentenceCheck("Paris is in France [1].", ("1",), "supported", 0.9)
    cite = Citation("1", "Atlas", "docs/atlas.md", "Paris is in France.", "supported",
                    sentences=(check,))
    record = ReplyRecord(report=_report(reply_reserve=64), citations=(cite,), confidence=0.8,
                         stages_ms={"model": 12.5}, guards_ms={"pii": 0.3}, notice="Safe mode")
    stored = record.to_dict()
    assert stored["reply_reserve"] == 64 and stored["total_tokens"] == record.report.total_tokens
    assert stored["citations"][0]["sentences"][0]["verdict"] == "supported"
    again = ReplyRecord.from_dict(stored)
    assert again == record
    assert again.citations[0].sentences[0].cited == ("1",)


def test_reply_record_reads_old_and_odd_rows() -> None:
    assert ReplyRecord.from_dict(None) == ReplyRecord()
    # A row from before the record: the report's keys plus ad-hoc ones, review marks merged in.
    old = {**_report().to_dict(), "confidence": 0.4, "review_status": "pending", "review_id": 7}
    record = ReplyRecord.from_dict(old)
    assert record.report == _report() and record.confidence == 0.4
    assert record.review_status == "pending" and record.review_id == 7
    assert record.stages_ms == {} and record.citations is None and record.notice is None
    # A tool-call row (no report), a malformed citation, an unknown key kept on a round trip.
    odd = ReplyRecord.from_dict({"tool_calls": [{"id": "c1"}], "citations": [{"bogus": 1}],
                                 "stages_ms": "not a dict", "confidence": "high"})
    assert odd.report is None and odd.citations == () and odd.stages_ms == {}
    assert odd.confidence is None
    assert odd.to_dict()["tool_calls"] == [{"id": "c1"}]
