"""`lastmile ingest`: document collections from a shell, and the docs corpus ``serve`` ingests.

``ingest PATH… --collection NAME [--user ID | --shared]`` prints a progress bar, then a
summary with one line per skipped or rejected file; the exit code is 1 only when a
named path does not exist.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from rich.console import Console
from rich.markup import escape

from assistant.cli.common import load_settings
from assistant.settings import Settings

__all__ = ["register", "sample_corpus"]

log = logging.getLogger(__name__)


def _corpus(settings: Settings) -> Any:
    from guardrails.injection import ingest_scanner
    from memory.corpus import Corpus

    return Corpus.open(settings, scanner=ingest_scanner)


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
    settings = load_settings()
    corpus = _corpus(settings)
    try:
        report = corpus.ingest(args.paths, collection=args.collection,
                               user_id=None if args.shared else args.user, progress=True)
    finally:
        corpus.engine.dispose()
    out = Console(highlight=False, soft_wrap=True)
    out.print(escape(report.summary()))
    return 1 if report.count("missing") else 0


def register(sub: Any) -> None:
    """Add ``ingest`` to the ``lastmile`` parser."""
    ingest = sub.add_parser("ingest", help="add files and folders to a document collection")
    ingest.add_argument("paths", nargs="+", help="files or folders (recursive): txt, md, html, pdf")
    ingest.add_argument("--collection", required=True, help="collection name")
    owner = ingest.add_mutually_exclusive_group()
    owner.add_argument("--user", default="default", help="owner of the collection (default: default)")
    owner.add_argument("--shared", action="store_true", help="a collection every user can search")
    ingest.set_defaults(func=cmd_ingest)
