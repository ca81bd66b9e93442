"""`lastmile bench faults`: every scripted fault, on both wire formats, for one remote
provider down and for every remote provider down, through a real ``Assistant``.

Each cell builds the real chain ``<wire>:bench-primary,<other wire>:bench-backup,scripted``
(the real openai/anthropic SDKs against two ``FaultServer``s on loopback, real SQLite,
the real ledger), runs N turns with the fault on, then lifts it and keeps chatting until
the primary answers again. It proves, from what was *stored*, that no turn lost its
user message or its reply row, and reports who answered, restarts, retries (ledger rows),
latency, and how long the primary's circuit took to open and to close again.

    lastmile bench faults [--json] [--turns N] [--degraded scripted|local]

``--json`` prints one object: ``cells`` (each with ``answered``, ``degraded``, ``lost``
and the rest), ``baseline`` (no fault, per wire) and ``total``. Exit 1 when any cell lost
a message, crashed, or was answered by someone other than expected.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from assistant.reply import Restart
from assistant.settings import Settings
from assistant.testing.faultserver import Fault, FaultServer, echo

__all__ = ["FAULTS", "SCOPES", "WIRES", "BenchConfig", "Cell", "audit", "expected_answer", "main",
           "run_cell", "run_matrix"]

WIRES = ("openai", "anthropic")
#: ``primary``: only the first provider misbehaves; ``remote``: every remote one does.
SCOPES = ("primary", "remote")


@dataclass(frozen=True)
class BenchConfig:
    """Short timeouts and backoffs so the whole matrix runs in about a minute."""

    turns: int = 6
    connect_timeout_s: float = 0.5
    read_timeout_s: float = 0.5  # long enough that a loaded box does not time out healthy calls
    retry_attempts: int = 2
    retry_initial_wait_s: float = 0.02
    retry_max_wait_s: float = 0.2
    retry_after_s: float = 0.1  # what the 429 asks for: within retry_max_wait_s, so honoured
    breaker_threshold: int = 2
    breaker_reset_s: float = 0.5
    degraded: str = "scripted"  # the last, non-remote member: scripted or local


#: Fault name → what the server does (``None``: the server is stopped: connection refused).
FAULTS: dict[str, Callable[[BenchConfig], Fault | None]] = {
    "500": lambda c: Fault.error(500),
    "429 retry-after": lambda c: Fault.rate_limited(retry_after=c.retry_after_s),
    "529 overloaded": lambda c: Fault.overloaded(),  # 503 on the OpenAI wire
    "hang": lambda c: Fault.hang(c.read_timeout_s * 10),
    "refused": lambda c: None,
    "malformed json": lambda c: Fault.malformed(),
    "stream cut": lambda c: Fault.cut_stream(after_chunks=2),
    "empty choices": lambda c: Fault.empty_choices(),
    "wrong type": lambda c: Fault.nonsense("wrong_type"),
    "401 auth": lambda c: Fault.error(401, "invalid api key"),
}


def labels(wire: str, degraded: str) -> tuple[str, str, str]:
    """``(primary, backup, degraded)`` provider labels of a cell's chain."""
    other = WIRES[1 - WIRES.index(wire)]
    return f"{wire}:bench-primary", f"{other}:bench-backup", degraded


def expected_answer(fault: str, scope: str, chain: tuple[str, str, str]) -> str:
    """Who must answer each fault turn: the backup when only the primary is down, the
    non-remote member when all remotes are; an auth failure surfaces instead (it is not
    a fallback kind: a wrong key must be seen, not hidden)."""
    if fault == "401 auth":
        return "error:AuthenticationFailed"
    if fault == "none":
        return chain[0]
    return chain[1] if scope == "primary" else chain[2]


@dataclass
class Cell:
    fault: str
    wire: str
    scope: str
    expected: str
    turns: int = 0
    answered: int = 0
    degraded: int = 0
    errors: int = 0
    lost: int = 0
    crashed: int = 0
    unexpected: int = 0
    unrecorded: int = 0  # turns without a ledger row
    restarts: int = 0
    retries: int = 0
    ledger_rows: int = 0
    recovery_turns: int = 0
    answered_by: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    added_p50_ms: float | None = None
    first_ms: float = 0.0  # the first faulted turn: retries and timeouts before the breaker knows
    breaker_open_s: float | None = None  # fault start → primary circuit open (None: never)
    recovered_s: float | None = None  # fault lifted → primary answers again (None: not in time)
    note: str | None = None  # the last crash, or why the primary did not come back

    @property
    def passed(self) -> bool:
        return not (self.lost or self.crashed or self.unexpected or self.unrecorded) \
            and self.recovered_s is not None


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


#: Layers and background work that would add calls of their own (or answer from a cache)
#: are off, whatever the environment says: the matrix measures the chain alone.
_ISOLATED = {"cache_mode": "off", "route_cheap": None, "kill_switch": False, "safe_mode_on_outage": False,
             "facts_enabled": False, "summarize_sessions": False, "sample_corpus": False}


def _settings(cfg: BenchConfig, data_dir: Path, wire: str, primary: FaultServer,
              backup: FaultServer) -> Settings:
    urls = {wire: primary.url, WIRES[1 - WIRES.index(wire)]: backup.url}
    isolated = {k: v for k, v in _ISOLATED.items() if k in Settings.model_fields}
    return Settings(**isolated,  # type: ignore[arg-type]  # values of several setting types
        _env_file=None, data_dir=data_dir, index_turns=False,
        providers=",".join(labels(wire, cfg.degraded)), max_reply_tokens=32,
        openai_api_key="sk-bench", openai_base_url=urls["openai"] + "/v1",
        anthropic_api_key="sk-bench", anthropic_base_url=urls["anthropic"],
        provider_connect_timeout_s=cfg.connect_timeout_s, provider_read_timeout_s=cfg.read_timeout_s,
        retry_attempts=cfg.retry_attempts, retry_initial_wait_s=cfg.retry_initial_wait_s,
        retry_max_wait_s=cfg.retry_max_wait_s, breaker_failure_threshold=cfg.breaker_threshold,
        breaker_reset_timeout_s=cfg.breaker_reset_s, budget_user_daily_usd=None,
        budget_global_daily_usd=None, fallback_on="unavailable,rate_limited,interrupted,bad_request,budget",
        prices={"openai:bench-*": (0.15, 0.60), "anthropic:bench-*": (3.0, 15.0)})


def _primary_breaker(model: Any) -> Any:
    """The first chain member's ``CircuitBreaker``, under whatever wrappers the chain has."""
    while getattr(model, "breaker", None) is None:
        members = getattr(model, "models", None)
        model = members[0] if members else getattr(model, "inner", None)
        if model is None:
            raise LookupError("the chain's first member has no circuit breaker")
    return model.breaker


def _matches(answer: str, expected: str) -> bool:
    """``local`` matches ``local:SmolLM2-…``: the chain names a family, replies a model."""
    return answer == expected or answer.startswith(expected + ":")


def _answer(message: Any) -> str:
    """Who answered, from the stored reply row: its provider, or ``error:<kind>``."""
    if message.status == "ok":
        return str(message.provider)
    return f"error:{(message.error or '?').split(':', 1)[0]}"


def run_cell(fault: str, wire: str, scope: str, cfg: BenchConfig, store: Any, data_dir: Path,
             baseline_p50: float | None = None) -> Cell:
    """One cell: N turns under the fault, then turns until the primary is back."""
    from assistant.orchestrator import Assistant

    chain = labels(wire, cfg.degraded)
    cell = Cell(fault, wire, scope, expected_answer(fault, scope, chain))
    user = f"{fault}-{wire}-{scope}".replace(" ", "_")
    with FaultServer() as primary, FaultServer() as backup:
        faulted = [primary] if scope == "primary" else [primary, backup]
        bot = Assistant(_settings(cfg, data_dir, wire, primary, backup), store=store)
        breaker = _primary_breaker(bot.model)
        sent: list[str] = []
        latencies: list[float] = []

        def turn(text: str) -> str | None:
            sent.append(text)
            started = time.perf_counter()
            try:
                stream = bot.stream(text, session_id="s", user_id=user)
                cell.restarts += sum(isinstance(chunk, Restart) for chunk in stream)
                reply = stream.reply
            except Exception as exc:  # noqa: BLE001 - a crash is what this bench exists to catch
                cell.crashed += 1
                cell.note = f"crash: {type(exc).__name__}: {exc}"
                return None
            finally:
                latencies.append((time.perf_counter() - started) * 1000)
            return reply.provider if reply is not None and reply.ok else None

        script = FAULTS[fault](cfg) if fault in FAULTS else Fault.ok("fine")
        for server in faulted:
            if script is None:
                server.stop()
            else:
                server.default = script
        fault_started = time.monotonic()
        for i in range(cfg.turns):
            turn(f"{user} turn {i}")
            opened = breaker.snapshot()["opened_at"]
            if cell.breaker_open_s is None and opened is not None:
                cell.breaker_open_s = round(opened - fault_started, 3)
        cell.p50_ms, cell.p95_ms = _quantile(latencies, 0.5), _quantile(latencies, 0.95)
        cell.first_ms = round(latencies[0], 1) if latencies else 0.0
        fault_turns = len(sent)
        for server in faulted:  # lift the fault
            server.start()
            server.default = echo
        lifted = time.monotonic()
        deadline = lifted + cfg.breaker_reset_s * 4 + 5
        while time.monotonic() < deadline:
            if _matches(turn(f"{user} recovery {len(sent) - fault_turns}") or "", chain[0]):
                cell.recovered_s = round(time.monotonic() - lifted, 3)
                break
            time.sleep(cfg.breaker_reset_s / 5)
        else:
            cell.note = f"primary not back: {breaker.snapshot()['last_error']}"
        bot.close()
    audit(cell, store, bot.ledger, user, sent, fault_turns)
    if baseline_p50 is not None:
        cell.added_p50_ms = round(cell.p50_ms - baseline_p50, 1)
    cell.p50_ms, cell.p95_ms = round(cell.p50_ms, 1), round(cell.p95_ms, 1)
    return cell


def audit(cell: Cell, store: Any, ledger: Any, user: str, sent: list[str], fault_turns: int) -> None:
    """Count from the database, not from what the turns returned: a turn is lost unless
    its user message is stored and followed by a stored reply row."""
    from assistant.errors import SessionNotFound

    try:
        rows = [m for m in store.history(user, "s") if m.role in ("user", "assistant")]
    except SessionNotFound:
        rows = []
    replies: dict[str, Any] = {}
    for mine, nxt in zip(rows, [*rows[1:], None], strict=True):
        if mine.role == "user" and nxt is not None and nxt.role == "assistant":
            replies[mine.content] = nxt
    cell.turns, cell.recovery_turns = fault_turns, len(sent) - fault_turns
    cell.lost = sum(text not in replies for text in sent)
    answers = [_answer(replies[t]) for t in sent[:fault_turns] if t in replies]
    cell.answered_by = dict(Counter(answers))
    cell.answered = sum(not a.startswith("error:") for a in answers)
    cell.errors = len(answers) - cell.answered
    cell.degraded = sum(a.split(":", 1)[0] in ("local", "scripted") for a in answers)
    cell.unexpected = sum(not _matches(a, cell.expected) for a in answers)
    calls = [c for c in ledger.calls(user_id=user) if c["purpose"] == "chat"]
    cell.ledger_rows = len(calls)
    per_member = Counter((c["turn_id"], c["provider"]) for c in calls)
    cell.retries = sum(n - 1 for n in per_member.values())
    recorded = {c["turn_id"] for c in calls}
    cell.unrecorded = sum(m.id not in recorded for m in rows if m.role == "user")


@contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """The faults are on purpose: keep the expected warnings off the report."""
    loggers = [logging.getLogger(name) for name in ("assistant", "memory")]
    levels = [lg.level for lg in loggers]
    if enabled:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run_matrix(cfg: BenchConfig, *, faults: Sequence[str] = tuple(FAULTS), wires: Sequence[str] = WIRES,
               scopes: Sequence[str] = SCOPES, quiet: bool = True,
               progress: Callable[[Cell], None] | None = None) -> dict[str, Any]:
    """Run the matrix in a scratch data dir; returns the JSON-able result."""
    from memory.db import open_engine
    from memory.store import ConversationStore

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lastmile-faults-") as scratch, _quiet(quiet):
        data_dir = Path(scratch)
        engine = open_engine(f"sqlite:///{data_dir / 'bench.db'}")
        store = ConversationStore(engine)
        try:
            steady = replace(cfg, turns=max(cfg.turns, 20))  # a steadier p50 to compare against
            baseline = {w: run_cell("none", w, "primary", steady, store, data_dir) for w in wires}
            cells = []
            for fault in faults:
                for wire in wires:
                    for scope in scopes:
                        cells.append(run_cell(fault, wire, scope, cfg, store, data_dir,
                                              baseline[wire].p50_ms))
                        if progress is not None:
                            progress(cells[-1])
        finally:
            engine.dispose()
    keys = ("turns", "answered", "degraded", "errors", "lost", "crashed", "unexpected", "unrecorded",
            "restarts", "retries", "ledger_rows", "recovery_turns")
    total = {k: sum(getattr(c, k) for c in cells) for k in keys}
    return {"config": asdict(cfg), "baseline": {w: _row(c) for w, c in baseline.items()},
            "cells": [_row(c) for c in cells], "total": total,
            "passed": all(c.passed for c in [*cells, *baseline.values()]),
            "seconds": round(time.monotonic() - started, 1)}


def _row(cell: Cell) -> dict[str, Any]:
    return {**asdict(cell), "passed": cell.passed}


def render(result: dict[str, Any]) -> None:
    """The matrix as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lastmile bench faults — {result['config']['turns']} turns per cell")
    cols = ["fault", "wire", "down", "expected", "answered", "degr", "err", "lost", "restart",
            "retry", "ledger", "1st ms", "p50 ms", "p95 ms", "+p50", "open s", "back s", "pass"]
    for name in cols:
        table.add_column(name, justify="left" if name in cols[:4] else "right", no_wrap=True)

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    for c in result["cells"]:
        table.add_row(c["fault"], c["wire"], "all remote" if c["scope"] == "remote" else c["scope"],
                      c["expected"].split(":", 1)[-1],
                      f"{c['answered']}/{c['turns']}", str(c["degraded"]), str(c["errors"]),
                      str(c["lost"]) if not c["lost"] else f"[red]{c['lost']}[/]", str(c["restarts"]),
                      str(c["retries"]), str(c["ledger_rows"]), fmt(c["first_ms"]), fmt(c["p50_ms"]),
                      fmt(c["p95_ms"]),
                      fmt(c["added_p50_ms"]), fmt(c["breaker_open_s"]), fmt(c["recovered_s"]),
                      "[green]yes[/]" if c["passed"] else "[red]NO[/]")
    out = Console(highlight=False, width=max(Console().width, 200))  # a report, not a TUI
    out.print(table)
    base = ", ".join(f"{w} p50 {b['p50_ms']} ms" for w, b in result["baseline"].items())
    t = result["total"]
    out.print(f"baseline (no fault): {base}\ntotal: {t['answered']}/{t['turns']} answered, "
              f"{t['degraded']} degraded, {t['errors']} surfaced errors, {t['lost']} lost, "
              f"{t['crashed']} crashed — {result['seconds']} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lastmile bench faults",
        description="The provider fault matrix: every fault x wire format x (primary down, all "
                    "remote down) through a real assistant; exit 1 if any turn is lost.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--turns", type=int, default=BenchConfig.turns, help="fault turns per cell")
    parser.add_argument("--degraded", choices=["scripted", "local"], default="scripted",
                        help="the non-remote last member (local: the real SmolLM2, slower)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset")
    args = parser.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    if args.turns < 1 or not faults or set(faults) - set(FAULTS):
        parser.error(f"--turns must be >= 1 and --faults a subset of: {', '.join(FAULTS)}")
    cfg = BenchConfig(turns=args.turns, degraded=args.degraded)
    result = run_matrix(cfg, faults=faults)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        render(result)
    return 0 if result["passed"] else 1
