"""How a long-running command stops: one order, shared by ``serve`` and ``worker``.

SIGTERM (a deploy, ``docker stop``) and Ctrl-C only *ask* to stop: the command stops
taking work, lets what is in flight finish up to ``LASTMILE_SHUTDOWN_GRACE_S``, stops
its job workers (the job in hand finishes, or goes back to the queue for any live
worker), and frees the models last, once no thread is inside one — freeing llama.cpp
under a decoding job thread was a segfault. Then it exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["StopSignal", "stop_assistant", "stop_workers"]

log = logging.getLogger(__name__)


class StopSignal:
    """SIGTERM / SIGINT set ``event`` instead of killing the process mid-turn."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: int | None = None

    def install(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        self.event.set()

    def wait(self) -> None:
        """Block until asked to stop (a loop: a signal wakes it at the next tick)."""
        while not self.event.wait(0.5):
            pass


def _workers(bot: Any) -> list[Any]:
    """Every job worker the assistant runs (one today; a list keeps the order general)."""
    found = list(getattr(bot, "workers", None) or [])
    worker = getattr(bot, "worker", None)
    if worker is not None and worker not in found:
        found.append(worker)
    return found


def stop_workers(bot: Any, timeout: float) -> None:
    """Stop the job workers: each finishes (or hands back) the job in hand."""
    for worker in _workers(bot):
        worker.close(timeout)


def stop_assistant(bot: Any, *, grace_s: float) -> None:
    """Workers first, then the assistant's own threads, then the models."""
    from assistant.providers.local import close_models

    try:
        stop_workers(bot, grace_s)
        bot.close()
    finally:
        # Even after a failed close: a job thread still decoding after the grace is
        # stopped at its next token by the model's gate, and only then is the model freed.
        close_models(timeout=grace_s)
    stop_workers(bot, 5.0)  # the aborted job's release is written before we exit
    log.info("stopped cleanly")
