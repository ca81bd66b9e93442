"""``lastmile eval SUITE``: run a golden suite, print a table, write a JSON report, and
exit 1 on a regression — a failing turn that passed in ``--baseline`` (every failing
turn without one) — so CI can gate a prompt or provider change.

The suite is validated in full before anything runs (a bad line costs one message
naming the line and the key, exit 2); the run uses a scratch data dir, never the
configured database.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["cmd_eval", "register", "render_table"]

EXAMPLE = Path(__file__).resolve().parents[1] / "ops" / "suites" / "example.yaml"


def register(sub: Any) -> None:
    """Add ``eval`` to the ``lastmile`` parser."""
    p = sub.add_parser("eval", help="run a golden suite through the assistant (CI gate)",
                       description="Run an eval suite (YAML or JSONL) through the real assistant; "
                                   "exit 1 on a regression. See README, Evals and canaries.")
    p.add_argument("suite", type=Path, nargs="?", default=None,
                   help=f"the suite file (default: the shipped example, {EXAMPLE.name})")
    p.add_argument("--model", choices=["scripted", "configured"], default=None,
                   help="scripted: each turn's recorded reply; configured: LASTMILE_PROVIDERS "
                        "(default: what the suite says)")
    p.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--baseline", type=Path, default=None,
                   help="a saved report: only turns that passed there (or are new) count as regressions")
    p.add_argument("--save-baseline", type=Path, default=None, help="also save this run as a baseline")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.set_defaults(func=cmd_eval)


def render_table(report: dict[str, Any]) -> Table:
    """One row per turn: case, turn, verdict, latency, cost, groundedness, what failed."""
    table = Table(title=f"eval {report['suite']} ({report['model']} model)")
    for column in ("case", "turn", "result", "latency ms", "cost USD", "grounded", "failures"):
        table.add_column(column, justify="right" if column in ("turn", "latency ms", "cost USD",
                                                               "grounded") else "left")
    for r in report["results"]:
        table.add_row(escape(r["case"]), str(r["turn"]),
                      "[green]pass[/]" if r["passed"] else "[red]FAIL[/]", f"{r['latency_ms']:.0f}",
                      f"{r['cost_usd']:.6f}",
                      "-" if r["groundedness"] is None else f"{r['groundedness']:.2f}",
                      escape("; ".join(r["failures"])))
    return table


def _baseline(path: Path | None) -> dict[str, Any] | None:
    from assistant.errors import ConfigurationError

    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"baseline {path}: not a readable eval report ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ConfigurationError(f"baseline {path}: not an eval report (no results list)")
    return data


def cmd_eval(args: argparse.Namespace) -> int:
    from assistant.cli.common import console, load_settings
    from assistant.errors import ConfigurationError
    from assistant.ops.evals import regressions, run_suite
    from assistant.ops.suite import load_suite

    try:
        suite = load_suite(args.suite or EXAMPLE)
        baseline = _baseline(args.baseline)
        settings = load_settings()
    except ConfigurationError as exc:  # the input's fault: one line, nothing ran
        console.print(f"[red]lastmile eval: {escape(str(exc))}[/]", highlight=False)
        return 2
    report = run_suite(suite, settings, model=args.model)
    report["regressions"] = regressions(report, baseline)
    text = json.dumps(report, indent=2, default=str)
    for path in (args.report, args.save_baseline):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
    if args.json:
        sys.stdout.write(text + "\n")
    else:
        Console(soft_wrap=False, width=140).print(render_table(report))
    bad = report["regressions"]
    console.print(f"lastmile eval: {report['passed']} passed, {report['failed']} failed, "
                  f"{len(bad)} regression(s) in {report['duration_ms'] / 1000:.1f} s"
                  + (f": {escape(', '.join(bad))}" if bad else ""))
    return 1 if bad else 0
