"""The `lastmile` command: a thin adapter over the library.

Start-up failures (database or Chroma unreachable, model missing) print one line
naming what failed and how to fix it, and exit non-zero — no tracebacks for
operators. This module only builds the parser; each command group lives in its own
module here (``run``: serve, chat; ``worker``; ``users``; ``control``: admin, cache; ``usage``;
``ingest``; ``review``; ``replay``; ``bench``; ``doctor``; ``eval``; ``shadow``) and registers
its verbs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.markup import escape

from assistant.cli import (
    bench,
    control,
    doctor,
    ingest,
    replay,
    review,
    run,
    shadow,
    usage,
    users,
    worker,
)
from assistant.cli import eval as eval_cmd
from assistant.cli.common import console, load_settings
from assistant.cli.logs import setup_logging
from assistant.errors import ConfigurationError, LastmileError
from assistant.settings import quiet_third_parties

__all__ = ["build_parser", "main"]

_settings = load_settings  # the name command modules outside this package used before the split

#: Command groups in the order ``lastmile --help`` lists them.
GROUPS = (run, worker, bench, doctor, usage, users, control, replay, ingest, review, eval_cmd, shadow)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lastmile", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_third_parties()
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()  # a bad LASTMILE_* value is one line, below
        setup_logging(settings.log_level, settings.log_level_libraries, verbose=args.verbose)
        return int(args.func(args))
    except LastmileError as exc:
        # One line, whatever failed: operators grep logs, and a second line gets lost.
        hint = " (run `lastmile doctor` for a full check)" if isinstance(exc, ConfigurationError) else ""
        console.print(f"[red]lastmile: {escape(str(exc))}[/]{hint}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
