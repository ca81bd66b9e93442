"""`lastmile ingest` and `lastmile review`: corpora and the human review queue from a shell.

``ingest PATH… --collection NAME [--user ID | --shared]`` prints a progress bar, then a
summary with one line per skipped or rejected file; the exit code is 1 only when a
named path does not exist. ``review list`` shows pending items; ``review approve|edit|
reject ID --reviewer R`` decides one (every decision is an audit row).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from rich.console import Console
from rich.markup import escape

from assistant.settings import Settings

__all__ = ["register", "sample_corpus"]

log = logging.getLogger(__name__)


def _corpus(settings: Settings) -> Any:
    from memory.corpus import Corpus

    return Corpus.open(settings)


def sample_corpus(settings: Settings, console: Console, *, background: bool = False) -> Any:
    """Ingest the project's docs as the shared ``lastmile-docs`` collection (start-up of
    ``lastmile serve``); unchanged files cost a hash each. Returns the ``Corpus`` (or
    ``None`` when disabled or unavailable). ``background``: ingest in a daemon thread, so
    the server starts at once and sources appear as files land (a file interrupted
    mid-way is redone at the next start). Never stops the server."""
    import threading

    from assistant.errors import LastmileError
    from assistant.grounding import SAMPLE_COLLECTION, sample_corpus_paths

    paths = sample_corpus_paths() if settings.sample_corpus else []
    if not paths:
        return None
    try:
        corpus = _corpus(settings)
    except LastmileError as exc:
        console.print(f"[yellow]lastmile: sample corpus not available: {escape(str(exc))}[/]")
        return None

    def run() -> None:
        try:
            report = corpus.ingest(paths, collection=SAMPLE_COLLECTION,
                                   progress=console.is_terminal and not background)
        except Exception as exc:  # noqa: BLE001 - a docs corpus is a bonus, never fatal
            console.print(f"[yellow]lastmile: sample corpus not ingested: {escape(str(exc))}[/]")
            return
        if report.count("added") or report.count("updated"):
            console.print(f"lastmile: sample corpus: {escape(report.summary().splitlines()[0])}")

    if background:
        threading.Thread(target=run, name="lastmile-sample-corpus", daemon=True).start()
    else:
        run()
    return corpus


def cmd_ingest(args: argparse.Namespace) -> int:
    from assistant.cli import _settings

    settings = _settings()
    corpus = _corpus(settings)
    try:
        report = corpus.ingest(args.paths, collection=args.collection,
                               user_id=None if args.shared else args.user, progress=True)
    finally:
        corpus.engine.dispose()
    out = Console(highlight=False, soft_wrap=True)
    out.print(escape(report.summary()))
    return 1 if report.count("missing") else 0


def cmd_review(args: argparse.Namespace) -> int:
    from assistant.cli import _settings
    from memory.db import open_engine
    from memory.review import ReviewQueue

    engine = open_engine(_settings().resolved_database_url)
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
    """Add the ``ingest`` and ``review`` subcommands to the ``lastmile`` parser."""
    ingest = sub.add_parser("ingest", help="add files and folders to a document collection")
    ingest.add_argument("paths", nargs="+", help="files or folders (recursive): txt, md, html, pdf")
    ingest.add_argument("--collection", required=True, help="collection name")
    owner = ingest.add_mutually_exclusive_group()
    owner.add_argument("--user", default="default", help="owner of the collection (default: default)")
    owner.add_argument("--shared", action="store_true", help="a collection every user can search")
    ingest.set_defaults(func=cmd_ingest)
    review = sub.add_parser("review", help="the human review queue")
    review.add_argument("action", choices=["list", "approve", "edit", "reject"])
    review.add_argument("id", nargs="?", type=int, help="review item id (not for list)")
    review.add_argument("--reviewer", default=None, help="your reviewer id (recorded)")
    review.add_argument("--note", default=None, help="why (recorded with the decision)")
    review.add_argument("--text", default=None, help="edit: the corrected answer")
    review.add_argument("--limit", type=int, default=50, help="list: at most this many")
    review.set_defaults(func=cmd_review)
