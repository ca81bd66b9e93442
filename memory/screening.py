"""The slot for the prompt-injection scanner that ingest runs over every chunk it stores.

Memory sits below the guardrails and may not import them, so the scanner is plugged in
from above: ``guardrails.injection`` registers its heuristics when it is imported (the
``Assistant``, the server and the CLI all import it), and the wiring may pass its own
``scanner=`` to a ``Corpus``. A corpus built without one uses what is registered here
at ingest time; with nothing registered its chunks are stored unmarked (a warning says
so) — the retrieval guard still scans every chunk before it can reach a prompt.
"""

from __future__ import annotations

import logging

from assistant.protocols import Scanner

__all__ = ["register_scanner", "registered_scanner"]

log = logging.getLogger(__name__)
_scanner: Scanner | None = None
_warned = False


def register_scanner(scanner: Scanner | None) -> None:
    """Make ``scanner`` the one a ``Corpus`` without ``scanner=`` runs at ingest."""
    global _scanner
    _scanner = scanner


def registered_scanner() -> Scanner | None:
    """The registered scanner, or ``None`` (warned about once per process)."""
    global _warned
    if _scanner is None and not _warned:
        _warned = True
        log.warning("no prompt-injection scanner registered (import guardrails): "
                    "document chunks are stored without an ingest-time verdict")
    return _scanner
