"""The audit log: one JSON line per event worth finding again (a guard pipeline's
timings, an error shown to a user, a reviewer's decision), each with a short reference
id. A toast that says "ref 3f9c2a1b" points at exactly one line here.

Events go to the ``lastmile.audit`` logger; ``lastmile serve`` writes them to
``<data dir>/audit.log`` (``open_audit_log``). Embedders route the logger wherever
their logs go.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["audit", "open_audit_log"]

log = logging.getLogger("lastmile.audit")


def audit(event: str, **fields: Any) -> str:
    """Record ``event`` with ``fields``; returns its reference id."""
    ref = secrets.token_hex(4)
    record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "ref": ref,
              "event": event, **fields}
    log.info(json.dumps(record, default=str, ensure_ascii=False))
    return ref


def open_audit_log(path: Path) -> logging.Handler:
    """Append audit events to ``path`` as JSON lines (idempotent per path)."""
    path = Path(path).resolve()
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            return handler
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler
