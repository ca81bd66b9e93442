"""``lastmile usage``: spend and tokens from the cost ledger, as a table or JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from assistant.cli.common import load_settings

__all__ = ["cmd_usage", "register"]


def cmd_usage(args: argparse.Namespace) -> int:
    from rich.table import Table

    from memory.db import open_engine
    from memory.ledger import Ledger

    group_by = args.by
    engine = open_engine(load_settings().resolved_database_url)
    try:
        ledger = Ledger(engine)
        rows = ledger.usage_report(group_by, since=args.since, user_id=args.user)
        total = ledger.spend(args.user, args.since)
    finally:
        engine.dispose()
    if args.json:
        sys.stdout.write(json.dumps({"group_by": group_by, "since": args.since, "user": args.user,
                                     "rows": rows, "total_cost_usd": round(total, 9)}) + "\n")
        return 0
    table = Table(title=f"lastmile usage{' since ' + args.since if args.since else ''}")
    for name in [*group_by, "calls", "tokens in", "tokens out", "cost USD", "failed", "refused"]:
        table.add_column(name, justify="left" if name in group_by else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(str(row[g] if row[g] is not None else "-")) for g in group_by),
                      str(row["calls"]), str(row["prompt_tokens"]), str(row["completion_tokens"]),
                      f"{row['cost_usd']:.6f}", str(row["failures"]), str(row["refused"]))
    out = Console(highlight=False, width=max(Console().width, 140))  # a report, not a TUI
    out.print(table)
    out.print(f"total: ${total:.6f}")
    return 0


def _day(value: str) -> str:
    try:
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {value!r}") from None


def _groups(value: str) -> list[str]:
    from memory.ledger import GROUPS

    groups = [g.strip() for g in value.split(",") if g.strip()]
    if not groups or set(groups) - set(GROUPS):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(GROUPS)}, got {value!r}")
    return groups


def register(sub: Any) -> None:
    """Add ``usage`` to the ``lastmile`` parser."""
    usage = sub.add_parser("usage", help="spend and tokens from the cost ledger")
    usage.add_argument("--by", type=_groups, default="user,day,purpose",
                       help="comma-separated groups: user, day, purpose, provider")
    usage.add_argument("--since", type=_day, default=None, help="first UTC day, YYYY-MM-DD")
    usage.add_argument("--user", default=None, help="only this user")
    usage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    usage.set_defaults(func=cmd_usage)
