"""`lastmile review`: the human review queue from a shell.

``review list`` shows pending items; ``review approve|edit|reject ID --reviewer R``
decides one (every decision is an audit row in ``review_decisions``).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from assistant.cli.common import load_settings

__all__ = ["cmd_review", "register"]


def cmd_review(args: argparse.Namespace) -> int:
    from memory.db import open_engine
    from memory.review import ReviewQueue

    engine = open_engine(load_settings().resolved_database_url)
    out = Console(highlight=False, soft_wrap=True)
    try:
        queue = ReviewQueue(engine)
        if args.action == "list":
            for item in queue.pending(reviewer_id=args.reviewer, limit=args.limit):
                conf = "-" if item.confidence is None else f"{item.confidence:.2f}"
                out.print(f"[bold]#{item.id}[/] {item.kind} user={escape(item.user_id)} "
                          f"confidence={conf} — {escape(item.reason)}")
                if item.question:
                    out.print(f"  Q: {escape(item.question[:300])}")
                out.print(f"  A: {escape(item.content[:600])}")
            return 0
        if args.id is None or not args.reviewer:
            raise SystemExit(f"lastmile review {args.action} needs an ID and --reviewer")
        decision = {"approve": "approve", "edit": "edit", "reject": "reject"}[args.action]
        info = queue.decide(args.id, decision, reviewer_id=args.reviewer, note=args.note,
                            edited_text=args.text)
        out.print(f"#{info.id}: {info.status}")
        return 0
    finally:
        engine.dispose()


def register(sub: Any) -> None:
    """Add ``review`` to the ``lastmile`` parser."""
    review = sub.add_parser("review", help="the human review queue")
    review.add_argument("action", choices=["list", "approve", "edit", "reject"])
    review.add_argument("id", nargs="?", type=int, help="review item id (not for list)")
    review.add_argument("--reviewer", default=None, help="your reviewer id (recorded)")
    review.add_argument("--note", default=None, help="why (recorded with the decision)")
    review.add_argument("--text", default=None, help="edit: the corrected answer")
    review.add_argument("--limit", type=int, default=50, help="list: at most this many")
    review.set_defaults(func=cmd_review)
