"""Fact extraction off the critical path: every user turn becomes a durable ``facts`` job.

``facts_rule`` is the outbox rule (``memory.outbox``): the job is written in the user
message's own transaction, so an acknowledged message is learned even if the process
dies before the reply. ``FactRecorder`` (a ``TurnRecorder``) enqueues the same job for a
message stored earlier. A turn never waits for extraction. ``FactExtractor`` is the
job handler: the rule-based candidates are applied first (so a fact is known even
while the model is down), then, when a model is configured, ``assistant.extract``
(passed in as ``extract=``: memory may not import the assistant layer) asks it for
more. A model candidate is kept only if its value appears in the message (no invented
facts), and may withdraw facts only when the message itself asks to forget or negates
something. Invalid model output raises ``ExtractionFailed`` and an outage a
``ProviderError``: the queue retries the job later; the rule part is idempotent, so a
retry repeats nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from assistant.errors import EgressBlocked, FactNotFound, LastmileError
from assistant.protocols import Extract, TurnRecorder
from assistant.providers.base import REMOTE
from memory.facts import Change, FactInfo, FactMemory
from memory.facts_extract import (
    Candidate,
    ExtractedFacts,
    extract_rules,
    forget_request,
    known_key,
    norm_key,
    norm_value,
    says_forget,
)
from memory.jobs import Job, JobQueue
from memory.outbox import FollowUp
from memory.store import StoredMessage

if TYPE_CHECKING:
    from assistant.settings import Settings

__all__ = ["FACTS_JOB", "FactExtractor", "FactRecorder", "ForgetResult", "Recorders", "facts_rule",
           "forget", "model_getter", "open_fact_memory", "remote_first"]

log = logging.getLogger(__name__)
FACTS_JOB = "facts"
MODEL_CONFIDENCE = 0.6
FORGET_SIMILARITY = 0.35
INSTRUCTIONS = (
    "List the facts the USER states about themself in this message (where they live, "
    "their name, job, employer, likes, dislikes, allergies, pets, languages ...). "
    "key: a short attribute name; value: copied from the message. op: 'add' for a fact "
    "stated, 'forget' if they ask you to forget it, 'retract' if they say it is no longer "
    "true. No facts: {\"facts\": []}.")


def facts_rule(message: StoredMessage) -> FollowUp | None:
    """The outbox rule: one ``facts`` job per user message with text (deduplicated by
    message id), whether or not a reply comes."""
    if message.role != "user" or not message.content.strip():
        return None
    return FollowUp(FACTS_JOB, {"message_id": message.id, "session_id": message.session_id},
                    f"facts:{message.id}")


class FactRecorder:
    """Enqueues one ``facts`` job per stored user message (deduplicated by message id)."""

    def __init__(self, jobs: JobQueue) -> None:
        self.jobs = jobs

    def submit(self, messages: Sequence[StoredMessage]) -> None:
        for message in messages:
            if (f := facts_rule(message)) is not None:
                self.jobs.enqueue(f.kind, f.payload, user_id=message.user_id, dedupe_key=f.dedupe_key)

    def flush(self) -> None:
        """Nothing to wait for here: the work is in the queue (``JobWorker.flush``)."""


class Recorders:
    """Several turn recorders behind one (e.g. the turn indexer and the fact recorder)."""

    def __init__(self, *recorders: TurnRecorder | None) -> None:
        self.recorders = [r for r in recorders if r is not None]

    def submit(self, messages: Sequence[StoredMessage]) -> None:
        for recorder in self.recorders:
            recorder.submit(messages)

    def flush(self) -> None:
        for recorder in self.recorders:
            recorder.flush()


class FactExtractor:
    """The ``facts`` job handler. ``model`` returns the extraction model, or None for
    rules only; it is called per job so a model that cannot be built is retried later."""

    def __init__(self, memory: FactMemory, model: Callable[[], object | None] | None = None, *,
                 max_invalid: int = 2, extract: Extract | None = None) -> None:
        if model is not None and extract is None:
            raise TypeError("a FactExtractor with a model needs extract= (assistant.extract.extract)")
        self.memory = memory
        self.model = model or (lambda: None)
        #: The structured-output call, passed in by the assistant (memory sits below it).
        self.extract = extract
        self.max_invalid = max_invalid
        self.changes: list[Change] = []  # the last job's, for tests and replay reports

    def __call__(self, job: Job) -> list[Change]:
        user_id = job.user_id or ""
        found = self.memory.messages(user_id, [int(job.payload["message_id"])])
        if not found or found[0].role != "user":
            log.info("facts job %d: message %s is gone; nothing to do", job.id, job.payload)
            return []
        message = found[0]
        if job.attempts > 1:
            self.memory.sync(user_id)  # an earlier attempt may have left Chroma behind SQL
        changes = self.memory.apply(user_id, extract_rules(message.content), source=message)
        # An outage is waited out for as long as the queue allows; a model that keeps
        # answering nonsense is given ``max_invalid`` tries, then the rules' facts stand.
        hopeless = (job.attempts > self.max_invalid
                    and (job.last_error or "").startswith("ExtractionFailed"))
        if hopeless:
            log.warning("facts for msg-%d: model output invalid %d times; rules only",
                        message.id, job.attempts - 1)
        model = None if hopeless else self.model()
        if model is not None:
            try:
                candidates = self._from_model(model, message)
            except EgressBlocked:  # a `block` PII kind may not go to the remote model: that
                candidates = []    # will not change on a retry, so the rules' facts stand
                log.info("facts for msg-%d: model skipped (PII blocked at the egress)", message.id)
            changes += self.memory.apply(user_id, candidates, source=message, extractor="model")
        self.changes = changes
        return changes

    def _from_model(self, model: object, message: StoredMessage) -> list[Candidate]:
        assert self.extract is not None  # checked in __init__: a model comes with its extract
        got = self.extract(model, ExtractedFacts, message.content, instructions=INSTRUCTIONS,
                      metadata={"purpose": "facts", "user_id": message.user_id,
                                "session_id": message.session_id, "turn_id": message.id})
        said = norm_value(message.content)
        may_withdraw = says_forget(message.content)
        kept: list[Candidate] = []
        for fact in got.facts:
            key, value = norm_key(fact.key), fact.value.strip()
            grounded = known_key(key, message.content) and (
                not value or norm_value(value) in said)
            if grounded and (value if fact.op == "add" else may_withdraw):
                candidate = Candidate(key=key, value=value, op=fact.op, confidence=MODEL_CONFIDENCE)
                if candidate not in kept:
                    kept.append(candidate)
        if len(kept) < len(got.facts):
            log.info("kept %d of %d model fact(s) for msg-%d (repeated or ungrounded ones dropped)",
                     len(kept), len(got.facts), message.id)
        return kept


@dataclass(frozen=True)
class ForgetResult:
    """What a forget request did; ``message`` is a sentence fit for the user."""

    forgotten: list[FactInfo] = field(default_factory=list)
    message: str = ""


def forget(memory: FactMemory, user_id: str, target: int | str) -> ForgetResult:
    """Forget a fact by id, or every current fact matching a description ("where I
    live", "that I like sushi", "my dog"). Nothing matching is an answer, not an error."""
    if isinstance(target, int) or (isinstance(target, str) and target.strip().isdigit()):
        try:
            done = memory.forget_ids(user_id, [int(target)], "user asked to forget it")
        except FactNotFound:
            return ForgetResult([], f"There is no fact {target} to forget.")
        return ForgetResult(done, f"Forgotten: {done[0].text}" if done
                            else f"Fact {target} was already forgotten.")
    text = " ".join(str(target).split())
    if not text:
        raise ValueError("say what to forget: a fact id or a description")
    phrase = text if text.lower().startswith(("forget", "delete", "erase", "remove")) else f"forget {text}"
    current = memory.facts(user_id)
    wanted = forget_request(phrase) or []
    hits = [f for f in current for c in wanted
            if c.key in ("*", f.key) and (not c.value or norm_value(c.value) in norm_value(f.value))]
    if not hits and not wanted:
        scored = memory.search(user_id, text, k=5)
        best = scored[0][1] if scored else 0.0
        hits = [f for f, s in scored if s >= FORGET_SIMILARITY and s >= best - 0.05]
    if not hits:
        return ForgetResult([], f"I have nothing stored about {text!r}, so there is nothing to forget.")
    # The reason is kept with the erased rows, so it must not quote the user's words
    # ("forget that I like sushi" names the very value being erased).
    done = memory.forget_ids(user_id, list(dict.fromkeys(f.id for f in hits)),
                             "user asked to forget it (by description)")
    return ForgetResult(done, "Forgotten: " + " ".join(f.text for f in done))


def remote_first(settings: Any) -> bool:
    """Is the chain led by a remote provider? Only then does ``auto`` spend model calls
    on background work: the embedded 135M model is too weak to extract or summarise
    reliably, and each call would hold its lock while the user waits for a chat reply."""
    return settings.provider_specs[0].split(":", 1)[0].strip().lower() in REMOTE


class ModelSource(Protocol):
    """What ``model_getter`` reads: the assistant's settings and (lazily built) chat model."""

    @property
    def settings(self) -> Settings: ...
    @property
    def model(self) -> Any: ...


def model_getter(assistant: ModelSource, policy: str, injected: bool) -> Callable[[], object | None]:
    """The extraction model per ``LASTMILE_FACTS_MODEL``: ``rules`` none; ``chat`` the
    chat model; ``auto`` the chat model when a remote provider leads the chain and the
    embedder did not inject its own (a test double's scripted replies are not for us).
    A model that cannot be built means rules only for that job."""
    def get() -> object | None:
        if policy == "rules" or (policy == "auto" and (injected or not remote_first(
                assistant.settings))):
            return None
        try:
            return assistant.model
        except LastmileError as exc:
            log.warning("fact extraction uses rules only: %s", exc)
            return None
    return get


def open_fact_memory(jobs: JobQueue, worker: Any, chroma: Any, *, guards: Any, settings: Any,
                     source: ModelSource, injected: bool,
                     extract: Extract | None = None) -> FactMemory:
    """Fact memory over the job queue's database, with the ``facts`` job handler
    registered on ``worker``. ``source`` has ``.settings`` and ``.model`` (see
    ``model_getter``). The caller composes it into recall and the turn recorder
    (``assistant.wiring``): this builds parts, it rewires nothing."""
    memory = FactMemory(jobs.engine, chroma, guards=guards, similarity=settings.facts_similarity)
    worker.register(FACTS_JOB, FactExtractor(
        memory, model_getter(source, settings.facts_model, injected) if extract else None,
        extract=extract))
    return memory
