"""``lastmile shadow --candidate PROVIDERS [--prompt FILE] --since D``: replay recorded
user turns through a candidate chain (scratch data dir, production read only) and print
production and candidate side by side: divergence, groundedness, latency, cost.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["cmd_shadow", "parse_since", "register"]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([hd])$")


def parse_since(value: str) -> datetime:
    """``2026-12-01``, an ISO timestamp, or ``24h`` / ``7d`` ago (UTC)."""
    value = value.strip()
    if match := _RELATIVE.match(value):
        amount, unit = float(match.group(1)), match.group(2)
        return datetime.now(UTC) - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since takes a date (2026-12-01), an ISO time or 24h / 7d, got {value!r:.40}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r:.20}")
    return int(value)


def register(sub: Any) -> None:
    """Add ``shadow`` to the ``lastmile`` parser."""
    p = sub.add_parser("shadow", help="replay recorded turns through a candidate configuration",
                       description="Replay recorded user turns through a candidate provider chain "
                                   "(and system prompt) without affecting users; compare with "
                                   "production. See README, Shadow runs.")
    p.add_argument("--candidate", required=True, help='the candidate chain, e.g. "openai:gpt-4o-mini,local"')
    p.add_argument("--prompt", type=Path, default=None, help="a file with the candidate system prompt")
    p.add_argument("--since", type=parse_since, required=True,
                   help="turns since: 2026-12-01, an ISO time, 24h or 7d")
    p.add_argument("--user", default=None, help="only this user's turns")
    p.add_argument("--limit", type=_positive, default=None, help="at most N turns")
    p.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_shadow)


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def render(summary: dict[str, Any]) -> Table:
    """Production and candidate side by side."""
    prod, cand = summary["production"], summary["candidate"]
    table = Table(title=f"shadow run: {prod['turns']} turns of {summary['divergence']['users']} user(s)")
    for column in ("", "production", "candidate"):
        table.add_column(column, justify="left" if not column else "right")
    rows = (("providers", ", ".join(prod["providers"]), ", ".join(cand["providers"])),
            ("replies ok", str(prod["ok"]), str(cand["ok"])),
            ("latency p50 ms", _fmt(prod["latency_ms_p50"], ".0f"), _fmt(cand["latency_ms_p50"], ".0f")),
            ("latency p95 ms", _fmt(prod["latency_ms_p95"], ".0f"), _fmt(cand["latency_ms_p95"], ".0f")),
            ("groundedness", _fmt(prod["groundedness_mean"], ".2f"), _fmt(cand["groundedness_mean"], ".2f")),
            ("cost USD", _fmt(prod["cost_usd"], ".6f"), _fmt(cand["cost_usd"], ".6f")))
    for name, a, b in rows:
        table.add_row(name, escape(a), escape(b))
    div = summary["divergence"]
    table.add_row("divergence (mean)", "", _fmt(div["mean"], ".2f"))
    table.add_row("turns diverging > 0.5", "", str(div["over_half"]))
    return table


def cmd_shadow(args: argparse.Namespace) -> int:
    from assistant.cli.common import console, load_settings
    from assistant.errors import ConfigurationError
    from assistant.grounding import default_documents
    from assistant.ops.shadow import recorded_turns, run_shadow, summarise
    from memory.db import open_engine

    try:
        prompt = args.prompt.read_text(encoding="utf-8") if args.prompt else None
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]lastmile shadow: cannot read --prompt {escape(str(args.prompt))}: {exc}[/]")
        return 2
    settings = load_settings()
    engine = open_engine(settings.resolved_database_url)
    try:
        turns = recorded_turns(engine, args.since, user_id=args.user, limit=args.limit)
        if not turns:
            console.print(f"lastmile shadow: no recorded turns since {args.since.isoformat()}")
            return 0
        documents = default_documents(settings, engine)  # users' own documents, read only
        try:
            shadow = run_shadow(turns, settings, candidate=args.candidate, prompt=prompt,
                                documents=documents)
        except ConfigurationError as exc:
            console.print(f"[red]lastmile shadow: {escape(str(exc))}[/]", highlight=False)
            return 2
    finally:
        engine.dispose()
    summary = summarise(shadow)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    if args.json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    else:
        Console(soft_wrap=False, width=120).print(render(summary))
    return 0
