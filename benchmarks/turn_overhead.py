"""Framework overhead per turn: everything lastmile does around the model.

Uses the scripted model (so the model itself costs ~0), a session pre-filled with
1,000 stored turns, and the default stores (SQLite in a temp dir, embedded Chroma with
background indexing). Prints p50/p95/max in milliseconds. Target: p95 <= 30 ms.

    python benchmarks/turn_overhead.py [--turns 200] [--history 1000] [--max-p95-ms 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from assistant import Assistant, ScriptedModel, Settings


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200, help="measured turns")
    parser.add_argument("--history", type=int, default=1000, help="stored turns before measuring")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--max-p95-ms", type=float, default=None, help="exit 1 above this")
    args = parser.parse_args()

    model = ScriptedModel(fn=lambda messages: "Sure — here is a short, plausible answer to that.")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=args.database_url)
        with Assistant(settings, model=model) as bot:
            session = bot.sessions.new("bench").session_id
            for i in range(args.history // 2):
                bot.store.add_message("bench", session, "user", f"stored question {i} about topic {i % 37}",
                                      token_count=9)
                bot.store.add_message("bench", session, "assistant", f"stored answer {i}", token_count=6)
            for i in range(10):  # warm up caches, embedder, SQL statement cache
                bot.chat(f"warm-up {i}", session_id=session, user_id="bench")
            bot.flush()
            timings: list[float] = []
            for i in range(args.turns):
                started = time.perf_counter()
                reply = bot.chat(f"Question {i}: what about topic {i % 37}?", session_id=session,
                                 user_id="bench")
                timings.append((time.perf_counter() - started) * 1000)
                assert reply.ok
            flush_started = time.perf_counter()
            bot.flush()
            flush_ms = (time.perf_counter() - flush_started) * 1000
            stored = len(bot.sessions.history(session, user_id="bench"))

    p50, p95 = percentile(timings, 50), percentile(timings, 95)
    table = Table(title=f"turn overhead, scripted model, {args.history} stored turns")
    for column in ("turns", "p50 ms", "p95 ms", "max ms", "index backlog flush ms", "stored msgs"):
        table.add_column(column, justify="right")
    table.add_row(str(args.turns), f"{p50:.2f}", f"{p95:.2f}", f"{max(timings):.2f}",
                  f"{flush_ms:.0f}", str(stored))
    Console().print(table)
    if args.max_p95_ms is not None and p95 > args.max_p95_ms:
        print(f"p95 {p95:.2f} ms is above the bound {args.max_p95_ms} ms", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
