"""The fault matrix (`lastmile bench faults`), reduced to 3 turns per cell: every fault
kind, on both wire formats, with the primary down and with every remote provider down,
through a real Assistant, the real SDKs against the fault server, and real SQLite.

The done-when of the providers issue: 0 lost messages in every cell, and each fault
answered by the member it must be (or surfaced, for a wrong key)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import delete

from assistant.cli import main
from assistant.bench.faults import (
    FAULTS,
    SCOPES,
    WIRES,
    BenchConfig,
    Cell,
    audit,
    run_cell,
    run_matrix,
)
from memory.db import open_engine
from memory.ledger import Ledger
from memory.models import Message
from memory.store import ConversationStore

TURNS = 3
FAST = BenchConfig(turns=TURNS, read_timeout_s=0.3, breaker_reset_s=0.15, retry_after_s=0.05)


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    return run_matrix(FAST)


def cells(matrix: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(c["fault"], c["wire"], c["scope"]): c for c in matrix["cells"]}


def test_every_fault_wire_and_scope_is_a_cell(matrix: dict[str, Any]) -> None:
    assert set(cells(matrix)) == {(f, w, s) for f in FAULTS for w in WIRES for s in SCOPES}
    assert len(FAULTS) == 10 and {"hang", "refused", "stream cut", "401 auth", "wrong type"} <= set(FAULTS)


def test_no_cell_loses_a_message_or_crashes(matrix: dict[str, Any]) -> None:
    for key, cell in cells(matrix).items():
        assert (cell["lost"], cell["crashed"], cell["unrecorded"]) == (0, 0, 0), key
        assert cell["turns"] == TURNS and cell["recovery_turns"] >= 1, key
    assert matrix["total"]["lost"] == 0 and matrix["passed"] is True


def test_each_fault_is_answered_by_the_member_it_must_be(matrix: dict[str, Any]) -> None:
    """Primary down → the other wire's remote answers; all remotes down → the local
    (scripted) member answers, degraded; a 401 is surfaced to the user, never hidden."""
    for (fault, wire, scope), cell in cells(matrix).items():
        backup = f"{'anthropic' if wire == 'openai' else 'openai'}:bench-backup"
        if fault == "401 auth":
            want = {"error:AuthenticationFailed": TURNS}
        else:
            want = {backup if scope == "primary" else "scripted": TURNS}
        assert cell["answered_by"] == want, (fault, wire, scope, cell["answered_by"])
        assert cell["degraded"] == (TURNS if scope == "remote" and fault != "401 auth" else 0)
        assert cell["answered"] + cell["errors"] == TURNS


def test_breakers_open_and_traffic_returns_after_the_probe(matrix: dict[str, Any]) -> None:
    for (fault, wire, scope), cell in cells(matrix).items():
        assert cell["recovered_s"] is not None, (fault, wire, scope)  # the primary answers again
        if fault == "401 auth":  # a wrong key is not an outage: the circuit stays closed
            assert cell["breaker_open_s"] is None and cell["ledger_rows"] == TURNS + cell["recovery_turns"]
        else:  # opened by the second faulted turn; the third fails fast (no ledger row)
            assert cell["breaker_open_s"] is not None, (fault, wire, scope)


def test_fault_specific_signals(matrix: dict[str, Any]) -> None:
    by = cells(matrix)
    for wire in WIRES:
        # A cut stream had shown text: every fallback after it is a signalled restart (one
        # per faulted member per turn until its circuit opens; a half-open probe may add one).
        assert FAST.breaker_threshold <= by[("stream cut", wire, "primary")]["restarts"] <= TURNS
        assert 2 * FAST.breaker_threshold <= by[("stream cut", wire, "remote")]["restarts"] <= 2 * TURNS
        assert by[("500", wire, "primary")]["restarts"] == 0  # failed before any text: silent
        # Retried before the breaker opened: one retry per failed call, per remote member.
        for fault in ("500", "429 retry-after", "529 overloaded", "hang", "refused"):
            assert by[(fault, wire, "primary")]["retries"] >= FAST.breaker_threshold, fault
            assert by[(fault, wire, "remote")]["retries"] >= 2 * FAST.breaker_threshold, fault
        # Nothing is retried once text streamed, and a 401 is never retried.
        assert by[("stream cut", wire, "primary")]["retries"] == 0
        assert by[("401 auth", wire, "primary")]["retries"] == 0
        # A hang costs the read timeout per attempt before the breaker knows.
        hang = by[("hang", wire, "primary")]
        assert hang["first_ms"] >= FAST.read_timeout_s * FAST.retry_attempts * 1000 * 0.9


def test_the_audit_counts_a_missing_reply_as_lost(tmp_path) -> None:
    """The lost counter is not vacuous: delete one stored reply and the audit sees it."""
    engine = open_engine(f"sqlite:///{tmp_path / 'a.db'}")
    store = ConversationStore(engine)
    try:
        cell = run_cell("500", "openai", "primary", FAST, store, tmp_path)
        assert cell.lost == 0 and cell.answered == TURNS
        user = "500-openai-primary"
        history = store.history(user, "s")
        victim = [m for m in history if m.role == "assistant"][1]
        with engine.begin() as conn:
            conn.execute(delete(Message).where(Message.id == victim.id))
        sent = [m.content for m in history if m.role == "user"]
        again = Cell("500", "openai", "primary", cell.expected)
        audit(again, store, Ledger(engine), user, sent, TURNS)
    finally:
        engine.dispose()
    assert again.lost == 1 and again.answered == TURNS - 1 and not again.passed


def test_cli_prints_one_json_object_and_exits_zero(capsys) -> None:
    code = main(["bench", "faults", "--json", "--turns", "1", "--faults", "stream cut"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["passed"] is True
    assert {(c["fault"], c["wire"], c["scope"]) for c in result["cells"]} == {
        ("stream cut", w, s) for w in WIRES for s in SCOPES}
    for row in [*result["cells"], result["total"]]:
        assert {"answered", "degraded", "lost"} <= set(row)
    assert (result["total"]["turns"], result["total"]["answered"], result["total"]["degraded"],
            result["total"]["lost"]) == (4, 4, 2, 0)


def test_cli_rejects_an_unknown_fault(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "faults", "--faults", "teapot"])
    assert info.value.code == 2 and "--faults a subset of" in capsys.readouterr().err
