"""The session summary as a context block, and the ``summary`` job that keeps it current.

The orchestrator asks for the block (cheap: one SQL read) and, when turns have left the
window that the summary does not cover yet, enqueues a fold. The fold itself runs on
the job worker, so a slow or failing summary model never delays or fails a turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from memory.summary import Summariser, render_summary_block
from memory.summary_store import SummaryRecord, SummaryStore

__all__ = ["KIND", "SessionSummaries"]

log = logging.getLogger(__name__)
KIND = "summary"


class SessionSummaries:
    """Summary blocks for prompts, and folds scheduled on a ``JobQueue``."""

    def __init__(self, store: SummaryStore, summariser: Summariser) -> None:
        self.store = store
        self.summariser = summariser

    def block(self, user_id: str, session_id: str, token_budget: int,
              count: Callable[[str], int]) -> tuple[str, SummaryRecord | None]:
        """The newest summary rendered within ``token_budget`` (and its record)."""
        if token_budget <= 0:
            return "", None
        record = self.store.latest(user_id, session_id)
        if record is None:
            return "", None
        text = render_summary_block(record.text, token_budget, count)
        return text, record if text else None

    def schedule(self, jobs: Any, user_id: str, session_id: str, upto_id: int,
                 covered_to: int | None) -> int | None:
        """Enqueue a fold up to ``upto_id`` unless the summary already covers it.

        ``covered_to`` is the ``to_id`` of the summary the caller saw (None: no summary).
        Each target gets its own dedupe key, so a newer target is never swallowed by an
        older queued one; folds are idempotent, so a stale one is a cheap no-op.
        """
        if jobs is None or upto_id <= 0 or (covered_to is not None and covered_to >= upto_id):
            return None
        if covered_to is None:  # maybe covered, just not shown (no summary budget)
            try:
                latest = self.store.latest(user_id, session_id)
            except Exception:  # noqa: BLE001 - let the job try (and record why it fails)
                latest = None
            if latest is not None and latest.to_id >= upto_id:
                return None
        try:
            return jobs.enqueue(KIND, {"user_id": user_id, "session_id": session_id,
                                       "upto_id": upto_id}, user_id=user_id,
                                dedupe_key=f"{KIND}:{user_id}:{session_id}:{upto_id}"[:200])
        except Exception:  # a missed fold is caught up by the next turn
            log.warning("could not enqueue a summary fold for %s/%s", user_id, session_id,
                        exc_info=True)
            return None

    def handle(self, job: Any) -> SummaryRecord | None:
        """The job handler: fold the session's dropped turns up to the job's target."""
        payload = job.payload
        try:
            user_id, session_id = str(payload["user_id"]), str(payload["session_id"])
            upto_id = int(payload["upto_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"summary job {getattr(job, 'id', '?')} has a bad payload "
                             f"{payload!r:.200}") from exc
        return self.summariser.fold(user_id, session_id, upto_id)
