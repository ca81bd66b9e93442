"""``lastmile bench overhead``: what lastmile adds to a turn, side by side with LiteLLM.

One run starts a loopback echo backend (``overhead_echo``), ``lastmile serve`` on a
scratch PostgreSQL database with every feature on (memory, documents, verification,
ledger, audit; the ``openai`` provider pointed at the backend) and, with ``--against
litellm``, a LiteLLM proxy pointed at the same backend. It then drives the backend
directly, LiteLLM and lastmile's ``/v1`` at each ``--concurrency`` and prints p50/p95/p99
latency, time to first token, throughput, the overhead over the bare backend and the
ratio lastmile / LiteLLM, for a fresh user and for a user with ``--big-turns`` stored
turns and a ``--documents``-document corpus (seeded before the server starts, so its
first turn is measured on a cold process). Every process is stopped by PID at the end
and the scratch database is dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.bench.overhead_load import Run, Target, drive
from assistant.bench.overhead_setup import (
    BIG_SESSIONS,
    Stack,
    drop_database,
    litellm_executable,
    seeded_copy,
)

__all__ = ["main"]

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BIG_USER = "bench-big"
_TOPICS = ("ferry", "per-diem", "boiler", "library", "parking", "recycling", "school",
           "clinic", "tram", "pool")


def _say(line: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"bench overhead: {line}", file=sys.stderr, flush=True)


def _question(n: int) -> str:
    topic = _TOPICS[n % len(_TOPICS)]
    return f"Question {n}: what is the fee and the opening time in the {topic} notice {n % 50}?"


def _keys(url: str, users: list[str]) -> dict[str, str]:
    from sqlalchemy import create_engine

    from memory.accounts import Accounts

    engine = create_engine(url)
    try:
        accounts = Accounts(engine)
        keys = {}
        for user in users:
            accounts.upsert(user)
            keys[user] = accounts.issue_key(user)
        return keys
    finally:
        engine.dispose()


def _first_turn(target: Target) -> float:
    run = drive(target, concurrency=1, requests=1, stream=False, texts=_question, timeout=300)
    if run.errors:
        raise RuntimeError(f"the first turn failed: {run.errors[0]}")
    return run.latencies[0]


def _row(scenario: str, run: Run, backend: Run | None) -> dict[str, Any]:
    base = backend.p(0.5) if backend else 0.0
    base_ttft = backend.p(0.5, ttft=True) if backend else 0.0
    return {"scenario": scenario, "path": run.target, "c": run.concurrency,
            "requests": len(run.latencies) + len(run.errors), "errors": len(run.errors),
            "p50_ms": run.p(0.5), "p95_ms": run.p(0.95), "p99_ms": run.p(0.99),
            "ttft_p50_ms": run.p(0.5, ttft=True), "ttft_p95_ms": run.p(0.95, ttft=True),
            "per_s": run.throughput,
            "overhead_p50_ms": run.p(0.5) - base if backend and run is not backend else 0.0,
            "ttft_overhead_p50_ms": (run.p(0.5, ttft=True) - base_ttft
                                     if backend and run is not backend else 0.0),
            "first_errors": run.errors[:3]}


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start everything, drive every path, stop everything; the figures as a dict."""
    started = time.monotonic()
    scenarios = [s for s in args.scenarios.split(",") if s]
    big = "big" in scenarios
    url, seeded = seeded_copy(args.postgres_url, workdir / "lastmile", BIG_USER,
                              turns=args.big_turns if big else 0,
                              documents=args.documents if big else 0,
                              cache=args.cache, log=workdir / "seed.log")
    stack = Stack(workdir, url)
    result: dict[str, Any] = {"rows": [], "stream": args.stream, "notes": [],
                              "seed_s": round(seeded, 1)}
    try:
        _say(f"seeded in {seeded:.0f} s")
        fresh_users = [f"fresh-{c}-{i}" for c in args.concurrency for i in range(c)]
        keys = _keys(url, [BIG_USER, "bench-warm", *fresh_users])
        backend_url = stack.start_echo()
        targets = {"backend": Target("backend direct", backend_url, "echo")}
        if args.against == "litellm":
            exe = litellm_executable(args.litellm)
            if exe is None:
                result["notes"].append("LiteLLM is not installed (pip install -e '.[bench]', or "
                                       "--litellm /path/to/bin/litellm): no LiteLLM rows")
            else:
                litellm_url, master = stack.start_litellm(backend_url, exe)
                targets["litellm"] = Target("LiteLLM proxy", litellm_url, "echo",
                                            lambda _i: (master, None))
                _say(f"LiteLLM proxy up ({time.monotonic() - started:.0f} s)")
        lastmile_url = stack.start_lastmile(backend_url)
        _say(f"lastmile serve up ({time.monotonic() - started:.0f} s)")
        if big:
            result["first_turn_big_ms"] = _first_turn(Target(
                "lastmile", lastmile_url, "lastmile",
                lambda _i: (keys[BIG_USER], "big-0")))
        warm = Target("lastmile", lastmile_url, "lastmile", lambda i: (keys["bench-warm"], f"w{i}"))
        for target in [*targets.values(), warm]:
            drive(target, concurrency=2, requests=args.warmup, stream=args.stream, texts=_question)
        for scenario in scenarios:
            for c in args.concurrency:
                n = args.requests if c == 1 else args.burst_requests
                runs: dict[str, Run] = {}
                if scenario == scenarios[0]:  # the gateways do not depend on the user
                    for name, target in targets.items():
                        runs[name] = drive(target, concurrency=c, requests=n, stream=args.stream,
                                           texts=_question)
                if scenario == "fresh":
                    ident = (lambda c_: lambda i: (keys[f"fresh-{c_}-{i}"], f"chat-{i}"))(c)
                else:
                    ident = lambda i: (keys[BIG_USER], f"big-{i % BIG_SESSIONS}")  # noqa: E731
                _say(f"{scenario}, c={c}: {n} requests per path")
                runs["lastmile"] = drive(Target("lastmile /v1", lastmile_url, "lastmile", ident),
                                         concurrency=c, requests=n, stream=args.stream,
                                         texts=_question)
                backend = runs.get("backend") or next(
                    (r["_run"] for r in result["rows"] if r["path"] == "backend direct"
                     and r["c"] == c), None)
                for run in runs.values():
                    row = _row(scenario, run, backend)
                    row["_run"] = run
                    result["rows"].append(row)
        return result
    finally:
        stack.close()
        drop_database(args.postgres_url, url)


def _targets(result: dict[str, Any], concurrency: list[int]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, held) for the issue's bars; ``None`` when not measured."""
    rows = result["rows"]

    def find(scenario: str, path: str, c: int) -> dict[str, Any] | None:
        return next((r for r in rows if r["scenario"] == scenario and r["path"].startswith(path)
                     and r["c"] == c), None)

    out: list[tuple[str, str, bool | None]] = []
    low, high = min(concurrency), max(concurrency)
    lm, ll = find("fresh", "lastmile", low), find("fresh", "LiteLLM", low)
    if lm and ll:
        out.append((f"c={low} TTFT overhead p50 <= LiteLLM's",
                    f"{lm['ttft_overhead_p50_ms']:.1f} vs {ll['ttft_overhead_p50_ms']:.1f} ms",
                    lm["ttft_overhead_p50_ms"] <= ll["ttft_overhead_p50_ms"]))
        out.append((f"c={low} total overhead p50 <= 2x LiteLLM's",
                    f"{lm['overhead_p50_ms']:.1f} vs 2 x {ll['overhead_p50_ms']:.1f} ms",
                    lm["overhead_p50_ms"] <= 2 * ll["overhead_p50_ms"]))
    burst = find("fresh", "lastmile", high)
    if burst and high > 1:
        out.append((f"c={high} >= 50 turns/s, 0 errors",
                    f"{burst['per_s']:.1f} turns/s, {burst['errors']} errors",
                    burst["per_s"] >= 50 and burst["errors"] == 0))
    fresh, big = find("fresh", "lastmile", low), find("big", "lastmile", low)
    if fresh and big:
        out.append((f"big user p95 <= 1.5x fresh user's (c={low})",
                    f"{big['p95_ms']:.1f} vs 1.5 x {fresh['p95_ms']:.1f} ms",
                    big["p95_ms"] <= 1.5 * fresh["p95_ms"]))
    if "first_turn_big_ms" in result:
        out.append(("first turn of the big user on a fresh process <= 500 ms",
                    f"{result['first_turn_big_ms']:.0f} ms", result["first_turn_big_ms"] <= 500))
    return out


def report(result: dict[str, Any], concurrency: list[int]) -> None:
    """The table, the ratios and the targets, printed with rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    mode = "streamed" if result["stream"] else "non-streamed"
    table = Table(title=f"Turn overhead vs LiteLLM ({mode}; ms unless noted)")
    for column in ("scenario", "path", "c", "requests", "errors", "p50", "p95", "p99",
                   "TTFT p50", "TTFT p95", "req/s", "overhead p50", "TTFT overhead p50"):
        table.add_column(column, justify="left" if column in ("scenario", "path") else "right")
    for r in result["rows"]:
        table.add_row(r["scenario"], r["path"], str(r["c"]), str(r["requests"]), str(r["errors"]),
                      *(f"{r[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms",
                                                "ttft_p95_ms", "per_s", "overhead_p50_ms",
                                                "ttft_overhead_p50_ms")))
    console.print(table)
    for scenario in dict.fromkeys(r["scenario"] for r in result["rows"]):
        for c in concurrency:
            lm = next((r for r in result["rows"] if r["scenario"] == scenario
                       and r["path"].startswith("lastmile") and r["c"] == c), None)
            ll = next((r for r in result["rows"] if r["path"].startswith("LiteLLM") and r["c"] == c),
                      None)
            if lm and ll:
                console.print(
                    f"ratio lastmile / LiteLLM, {scenario}, c={c}: p50 "
                    f"{_ratio(lm['p50_ms'], ll['p50_ms']):.2f}x, overhead p50 "
                    f"{_ratio(lm['overhead_p50_ms'], ll['overhead_p50_ms']):.2f}x, TTFT overhead p50 "
                    f"{_ratio(lm['ttft_overhead_p50_ms'], ll['ttft_overhead_p50_ms']):.2f}x, "
                    f"throughput {_ratio(lm['per_s'], ll['per_s']):.2f}x", highlight=False)
    if "first_turn_big_ms" in result:
        console.print(f"first turn of the big user on a fresh process: "
                      f"{result['first_turn_big_ms']:.0f} ms (seeding took {result['seed_s']} s; 0: reused)",
                      highlight=False)
    for name, measured, held in _targets(result, concurrency):
        verdict = "n/a" if held is None else ("held" if held else "MISSED")
        console.print(f"target {name}: {measured} -> {verdict}", highlight=False)
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lastmile bench overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--against", choices=["none", "litellm"], default="none",
                        help="also drive a LiteLLM proxy on the same backend (the `bench` extra)")
    parser.add_argument("--concurrency", default="1,50", help="comma-separated, e.g. 1,50")
    parser.add_argument("--stream", action="store_true", help="streamed requests (TTFT = first token)")
    parser.add_argument("--requests", type=int, default=100, help="requests per pass at c=1")
    parser.add_argument("--burst-requests", type=int, default=200, help="requests per pass at c>1")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests per path")
    parser.add_argument("--scenarios", default="fresh,big", help="fresh, big, or both")
    parser.add_argument("--big-turns", type=int, default=10_000, help="stored turns of the big user")
    parser.add_argument("--documents", type=int, default=50, help="the big user's corpus size")
    parser.add_argument("--postgres-url", default=DEFAULT_PG,
                        help="admin URL; a scratch database is created and dropped")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lastmile" / "bench-overhead",
                        help="where the seeded data lives between runs (with a template database)")
    parser.add_argument("--litellm", metavar="PATH",
                        help="the litellm CLI (default: beside this Python, .venv-litellm, then PATH)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    try:
        args.concurrency = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    except ValueError:
        parser.error("--concurrency takes comma-separated integers, e.g. 1,50")
    if not args.concurrency or min(args.concurrency) < 1 or args.requests < 1 or args.burst_requests < 1:
        parser.error("--concurrency, --requests and --burst-requests must be at least 1")
    if not set(args.scenarios.split(",")) <= {"fresh", "big"} or not args.scenarios:
        parser.error("--scenarios takes fresh, big or fresh,big")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lastmile-bench-overhead-") as tmp:
        result = measure(args, Path(tmp))
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps({**result, "rows": [{k: v for k, v in r.items() if k != "_run"}
                                             for r in result["rows"]]}, indent=2, default=str))
    else:
        report(result, args.concurrency)
    return 0 if all(r["errors"] == 0 for r in result["rows"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
