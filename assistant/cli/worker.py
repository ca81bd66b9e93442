"""``lastmile worker``: only the background job workers, no web server.

With ``LASTMILE_SERVE_WORKERS=false`` the ``serve`` replicas are pure request handlers
and follow-up work (indexing, facts, summaries) runs here; any number of workers share
the one jobs table (claims never collide). Stops on SIGTERM / Ctrl-C after the job in
hand (``assistant.cli.lifecycle``), exit code 0.
"""

from __future__ import annotations

import argparse
from typing import Any

from assistant.cli.common import console, load_settings
from assistant.cli.lifecycle import StopSignal, stop_assistant
from assistant.errors import ConfigurationError

__all__ = ["cmd_worker", "register"]


def cmd_worker(args: argparse.Namespace) -> int:
    from assistant.orchestrator import Assistant

    stop = StopSignal().install()  # before the build: a SIGTERM during start-up still stops cleanly
    settings = load_settings().model_copy(update={"job_workers": True})  # what it is for
    bot = Assistant(settings)
    try:
        if bot.worker is None:
            raise ConfigurationError("lastmile worker needs the SQL store (LASTMILE_DATABASE_URL)")
        bot.worker.start()
        kinds = ", ".join(sorted(bot.worker.handlers)) or "none"
        console.print(f"lastmile: worker {bot.worker.worker_id} running jobs ({kinds})")
        stop.wait()
    finally:
        stop_assistant(bot, grace_s=settings.shutdown_grace_s)
    console.print("lastmile: worker stopped")
    return 0


def register(sub: Any) -> None:
    """Add ``worker`` to the ``lastmile`` parser."""
    worker = sub.add_parser("worker", help="run the background job workers only (no web server)")
    worker.set_defaults(func=cmd_worker)
