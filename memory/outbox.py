"""The transactional outbox: a message's follow-up work, committed with the message.

Why: follow-up work kept in a thread (an in-memory indexing queue, a facts job enqueued
after the reply) is lost when the process dies between the message's commit and that
work's own write — the user saw their message accepted, and it was never learned or
indexed. Here the store asks the outbox, inside the message's transaction, which jobs
the message needs (``rules``: an ``index`` job, a ``facts`` job …) and they commit or
roll back together. Any replica's workers then claim them (``memory.workers``).

A rule is a function of the stored message returning a ``FollowUp`` or None; the wiring
adds them (``assistant.wiring``), the store calls ``write`` (``ConversationStore.outbox``).
``submit`` (the ``TurnRecorder`` interface) queues the same jobs for messages already
stored — an import, a replay — in one transaction of their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from assistant.records import StoredMessage
from memory.jobs import JobQueue

__all__ = ["INDEX_JOB", "FollowUp", "Outbox", "Rule", "index_rule"]

log = logging.getLogger(__name__)
INDEX_JOB = "index"


@dataclass(frozen=True)
class FollowUp:
    """One job a message needs (``dedupe_key`` keeps a re-submission from doubling it)."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    delay_s: float = 0.0


Rule = Callable[[StoredMessage], "FollowUp | None"]


def index_rule(*, linger_s: float = 0.0, skip_providers: Sequence[str] = ()) -> Rule:
    """Index what the user said and each ``ok`` reply — not a failed one, nor one from
    ``skip_providers`` (a retrieval-only reply quotes memories back). ``linger_s`` holds
    the job back so a burst of turns is embedded in one batch (latency stays bounded)."""
    skip = frozenset(skip_providers)

    def rule(message: StoredMessage) -> FollowUp | None:
        if not message.content.strip() or message.status != "ok":
            return None
        if message.role == "assistant" and (message.provider in skip or message.tool_calls):
            return None
        if message.role not in ("user", "assistant"):
            return None
        return FollowUp(INDEX_JOB, {"message_id": message.id}, f"index:{message.id}", linger_s)

    return rule


class Outbox:
    """The follow-up rules of one store and the queue their jobs go to."""

    #: ``TurnRecorder`` marker: the turn loop need not ``submit`` what the store wrote.
    transactional = True

    def __init__(self, jobs: JobQueue, rules: Sequence[Rule] = ()) -> None:
        self.jobs = jobs
        self.rules: list[Rule] = list(rules)
        self._paused = threading.Event()

    def add(self, rule: Rule) -> None:
        self.rules.append(rule)

    def follow_ups(self, message: StoredMessage) -> list[FollowUp]:
        return [f for rule in self.rules if (f := rule(message)) is not None]

    def write(self, db: Session, message: StoredMessage) -> list[str]:
        """Add ``message``'s jobs in the caller's transaction; returns their kinds (for
        ``notify`` after the commit). Nothing while ``paused``."""
        if self._paused.is_set():
            return []
        kinds = []
        for f in self.follow_ups(message):
            self.jobs.add(db, f.kind, f.payload, user_id=message.user_id,  # one INSERT at commit
                          dedupe_key=f.dedupe_key, delay_s=f.delay_s, flush=False)
            kinds.append(f.kind)
        return kinds

    def notify(self, kinds: Sequence[str]) -> None:
        """Wake this process's workers for committed jobs."""
        for kind in dict.fromkeys(kinds):
            self.jobs.notify(kind)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Write no follow-ups meanwhile (e.g. a replay's probe questions must not become
        memories); a later start-up sweep still indexes what was stored."""
        self._paused.set()
        try:
            yield
        finally:
            self._paused.clear()

    # -- TurnRecorder ----------------------------------------------------------------
    def submit(self, messages: Sequence[StoredMessage]) -> None:
        """Queue the follow-ups of messages stored earlier (deduplicated while queued)."""
        for message in messages:
            for f in self.follow_ups(message):
                self.jobs.enqueue(f.kind, f.payload, user_id=message.user_id,
                                  dedupe_key=f.dedupe_key, delay_s=f.delay_s)

    def flush(self) -> None:
        """Nothing to wait for here: the work is in the queue (``Workers.flush``)."""
