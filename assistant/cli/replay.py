"""``lastmile replay FILE``: the command-line face of ``assistant.replay``.

The file (and probes) are parsed in full and ``--out`` is checked before anything runs,
so a bad input costs one line naming the problem and leaves nothing behind. The replay
uses a scratch data dir (SQLite + embedded Chroma, deleted afterwards) unless
``--data-dir``/``--database-url`` say otherwise: a tester's replay never writes into the
configured production database by accident.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

__all__ = ["cmd_replay", "register"]


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _user(value: str) -> str:
    if not value.strip() or len(value) > 128:
        raise argparse.ArgumentTypeError("a user id is 1 to 128 characters")
    return value


def register(sub: Any) -> None:
    """Add ``replay`` to the ``lastmile`` parser."""
    p = sub.add_parser("replay", help="replay a long conversation and write a report",
                       description="Replay a long conversation through the assistant and write a "
                                   "report (Markdown, PNG charts, JSON). See README, Replay.")
    p.add_argument("file", type=Path, help="JSONL of {role, content, timestamp?} or LoCoMo JSON")
    p.add_argument("--out", type=Path, default=None,
                   help="report directory (must not exist or be empty; default replay-<name>-<time>)")
    p.add_argument("--model", choices=["scripted", "configured"], default="scripted",
                   help="scripted: deterministic replies (default); configured: LASTMILE_PROVIDERS")
    p.add_argument("--user", type=_user, default="replay", help="user id the conversation is replayed as")
    p.add_argument("--probes", type=Path, default=None,
                   help="JSONL of {question, evidence: [turn id or line number, ...]}")
    p.add_argument("--limit", type=_positive, default=None, help="replay only the first N user turns")
    p.add_argument("--conversation", default=None, help="LoCoMo: sample_id to replay (default the first)")
    p.add_argument("--flush-every", type=_positive, default=10,
                   help="wait for background indexing/memory jobs every N turns (default 10)")
    p.add_argument("--context-window", type=_positive, default=2048,
                   help="the scripted model's context window in tokens (default 2048)")
    p.add_argument("--data-dir", type=Path, default=None, help="keep the replay's SQLite/Chroma here")
    p.add_argument("--database-url", default=None, help="replay into this database instead of SQLite")
    p.add_argument("--json", action="store_true", help="print the report summary as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)


def summary(report: dict, path: Path) -> dict:
    """The report without its per-turn rows and per-probe items: what a terminal shows."""
    probes = report["probes"]
    return {"report": str(path), "meta": report["meta"], "tokens": report["tokens"],
            "latency_ms": report["latency_ms"], "memory": report["memory"]["tables"],
            "pending_question": {"checked": report["pending_question"]["checked"],
                                 "violations": len(report["pending_question"]["violations"])},
            "probes": None if probes is None else {k: probes[k] for k in ("asked", "skipped", "recall",
                                                                           "memory_tokens")
                                                   if k in probes}}


def cmd_replay(args: argparse.Namespace) -> int:
    from assistant.cli.common import console, load_settings
    from assistant.errors import ConfigurationError
    from assistant.replay import ReplayOptions, run_replay
    from assistant.replay.inputs import load_probes, load_script
    from assistant.replay.report import check_out_dir, write_report

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or Path(f"replay-{args.file.stem}-{stamp}")
    try:
        script = load_script(args.file, conversation=args.conversation)
        probes = load_probes(args.probes, script) if args.probes else script.probes
        check_out_dir(out)
    except ConfigurationError as exc:  # the input's fault: one line, no `doctor` hint
        console.print(f"[red]lastmile replay: {escape(str(exc))}[/]", highlight=False)
        return 2
    options = ReplayOptions(model=args.model, user_id=args.user, limit=args.limit,
                            flush_every=args.flush_every, context_window=args.context_window,
                            progress=not args.no_progress)
    with tempfile.TemporaryDirectory(prefix="lastmile-replay-") as scratch:
        data_dir = args.data_dir or Path(scratch)
        settings = load_settings().model_copy(update={
            "data_dir": data_dir, "database_url": args.database_url, "chroma_url": None})
        try:
            report = run_replay(script, settings, options, probes=probes)
        except ConfigurationError as exc:  # e.g. a window too small for the system prompt
            console.print(f"[red]lastmile replay: {escape(str(exc))}[/]", highlight=False)
            return 2
    path = write_report(report, out)
    result = summary(report, path)
    if args.json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    else:
        flat = report["tokens"]["flatness"]
        console.print(f"lastmile replay: {report['meta']['turns']} turns in {report['meta']['duration_s']}"
                      " s; "
                      f"prompt tokens at turns {report['tokens']['at_turn']}, flatness ratio "
                      f"{flat['ratio']}; pending-question violations: "
                      f"{result['pending_question']['violations']}")
        if result["probes"]:
            probe = result["probes"]
            cats = ", ".join(f"{c} {v:.3f}" for c, v in probe["recall"].items() if c != "all")
            console.print("probe evidence recall in the memory block:"
                          f" {probe['recall']['all']:.3f} ({cats}; {probe['asked']} probes, "
                          f"{probe['skipped']} skipped; block mean "
                          f"{probe.get('memory_tokens', {}).get('mean', 0):.0f} tokens)")
        console.print(f"report: {escape(str(path / 'report.md'))}")
    return 1 if result["pending_question"]["violations"] else 0
