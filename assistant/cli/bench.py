"""``lastmile bench SUITE``: hands the rest of the line to a suite in ``assistant.bench``."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["SUITES", "cmd_bench", "register"]

#: suite -> (module in ``assistant.bench`` with a ``main(argv)``, what it measures)
SUITES = {"locomo": ("assistant.bench.locomo", "memory retrieval recall@k"),
          "faults": ("assistant.bench.faults", "the provider fault matrix"),
          "cluster": ("assistant.bench.cluster", "replicas on PostgreSQL + Chroma under load"),
          "overhead": ("assistant.bench.overhead", "turn overhead over an echo backend vs LiteLLM")}


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    module, _ = SUITES[args.suite]
    return int(importlib.import_module(module).main(args.rest))


def register(sub: Any) -> None:
    """Add ``bench`` to the ``lastmile`` parser."""
    bench = sub.add_parser("bench", help="run a benchmark (see docs/benchmarks.md)")
    bench.add_argument("suite", choices=list(SUITES),
                       help="; ".join(f"{name}: {what}" for name, (_, what) in SUITES.items()))
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="the suite's own options (--help)")
    bench.set_defaults(func=cmd_bench)
