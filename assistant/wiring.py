"""Composition in one place: every collaborator of an ``Assistant``, built from settings.

``Assistant(settings, model=..., store=..., ...)`` calls ``build`` and keeps the parts;
the class itself is the turn loop and a thin facade. Reading this module top to bottom
is reading how one assistant is put together — store, turn memory and its indexer, cost
ledger and spend caps, the chat model, background jobs, guards, fact memory (recalled
ahead of turn memory, fed by a ``facts`` job per user turn), documents, the citation
guard, the review queue and rolling summaries — so a change to what an assistant is made
of is a change here, and nothing reaches into an ``Assistant`` from outside to rewire it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from assistant import grounding, telemetry
from assistant.errors import LastmileError
from assistant.extract import extract as extract_structured
from assistant.judge import ModelJudge
from assistant.layers.ledger import LedgerModel, open_accounting
from assistant.layers.safemode import RETRIEVAL_LABEL
from assistant.protocols import Documents, MessageStore, Recall, TurnRecorder
from assistant.providers import ChatModel, build_model
from assistant.settings import Settings
from guardrails import Guard, GuardChain, ScopeGuard, default_pipeline
from guardrails.grounding import CitationGuard
from memory.context_summary import KIND as SUMMARY_JOB
from memory.context_summary import SessionSummaries
from memory.facts_jobs import facts_rule, open_fact_memory, remote_first
from memory.indexer import TurnIndexer
from memory.jobs import JobQueue, open_jobs
from memory.outbox import Outbox, index_rule
from memory.review import ReviewQueue
from memory.runtime_settings import RuntimeSettings
from memory.workers import Workers

if TYPE_CHECKING:
    from memory.budget import Budget
    from memory.facts import FactMemory
    from memory.ledger import Ledger
    from memory.store import ConversationStore

__all__ = ["LazyModel", "Parts", "Tunables", "build"]

log = logging.getLogger(__name__)


class Closeable(Protocol):
    def close(self) -> None: ...


class Tunables:
    """The settings in force: the environment's, with an admin's run-time overrides
    (``memory.runtime_settings``, the Settings tab) laid over them, re-read like the budget
    caps. The chat model follows ``providers`` and ``local_model_path`` (``LazyModel``),
    the citation guard the policy; the rest is read from ``current()`` per turn."""

    def __init__(self, base: Settings, runtime: RuntimeSettings) -> None:
        self.base, self.runtime = base, runtime
        self.guard: CitationGuard | None = None
        self._policy = base.citation_policy  # the guard's own, when no admin overrides it

    def follow(self, guard: CitationGuard) -> None:
        self.guard, self._policy = guard, guard.policy

    def current(self) -> Settings:
        settings = self.runtime.apply(self.base)
        if self.guard is not None:  # every turn reads one value, so a plain assignment will do
            overridden = settings is not self.base and "citation_policy" in self.runtime.overrides()
            self.guard.policy = settings.citation_policy if overridden else self._policy
        return settings


class LazyModel:
    """The chat model, built on first use so a UI can start and explain a missing model
    file instead of crashing. One instance is shared by the turn loop, fact extraction
    and the summariser, so the chain (and its breakers) is built once per configuration:
    when an admin changes the chain or the model file, the next use builds (or takes
    back) that one."""

    def __init__(self, settings: Settings, model: ChatModel | None = None, *,
                 ledger: Ledger | None = None, budget: Budget | None = None,
                 current: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        #: An embedder's own model (``Assistant(model=...)``): background work leaves it alone.
        self.injected = model is not None
        self.ledger, self.budget = ledger, budget
        self._model = model
        self._current = current or (lambda: self.settings)
        self._chains: dict[tuple[str, str], ChatModel] = {}
        self._lock = threading.Lock()

    @property
    def model(self) -> ChatModel:
        if self.injected and self._model is not None:
            return self._model
        settings = self._current()
        key = (",".join(settings.provider_specs), str(settings.local_model_path or ""))
        with self._lock:
            model = self._chains.get(key)
            if model is None:
                model = self._chains[key] = build_model(settings, self.ledger, self.budget)
                if self._model is not None:
                    log.warning("chat model now %s (runtime settings)", model.label)
            self._model = model
        return model

    @property
    def built(self) -> ChatModel | None:
        """The model if it exists yet (never builds it)."""
        return self._model


@dataclass
class Parts:
    """What ``build`` made; ``owned`` are the parts with threads to stop on close."""

    settings: Settings
    store: MessageStore
    chat: LazyModel
    memory: Recall | None
    recorder: TurnRecorder | None
    ledger: Ledger | None
    budget: Budget | None
    jobs: JobQueue | None
    worker: Workers | None
    guards: GuardChain
    facts_memory: FactMemory | None
    documents: Documents | None
    citation_guard: CitationGuard
    review: ReviewQueue | None
    summaries: SessionSummaries | None
    tunables: Tunables
    owned: list[Closeable] = field(default_factory=list)

    @property
    def engine(self) -> Any:
        """The store's SQL engine (None for a store without one)."""
        return getattr(self.store, "engine", None)


def build(settings: Settings, *, model: ChatModel | None = None,
          store: MessageStore | None = None, recorder: TurnRecorder | None = None,
          memory: Recall | None = None, guards: list[Guard] | None = None,
          documents: Documents | None = None) -> Parts:
    """Every part from ``settings``; a part passed in is used as given (tests and
    embedders swap the model, store, recorder, recall, guards or documents)."""
    owned: list[Closeable] = []
    telemetry.configure(settings)  # traces (once per process) and the metrics' label set
    built_store = store is None  # a store we build ourselves may bring its corpus
    if store is None:
        from memory.db import open_engine
        from memory.store import ConversationStore

        store = ConversationStore(open_engine(settings.resolved_database_url))
    engine = getattr(store, "engine", None)
    indexer = None
    if recorder is None and settings.index_turns and engine is not None:
        turns, indexer = _turn_memory(settings, store)
        memory = turns if memory is None else memory
    # The cost ledger and spend caps live in the store's database (none without one).
    ledger, budget = open_accounting(engine, settings)
    # What an admin changed at run time, laid over ``settings`` (the Settings tab).
    tunables = Tunables(settings, RuntimeSettings(engine, refresh_s=settings.control_refresh_s))
    chat = LazyModel(settings, _embedder_model(model, settings, ledger, budget),
                     ledger=ledger, budget=budget, current=tunables.current)
    # Durable background jobs (indexing, facts, summaries) in the same database, run by
    # this process's workers (LASTMILE_JOB_WORKERS) or any other's. The outbox writes a
    # message's follow-up jobs in the message's own transaction (memory/outbox.py).
    jobs, worker = open_jobs(engine, settings)
    outbox = Outbox(jobs) if jobs is not None else None
    if worker is not None:
        owned.append(worker)
    if outbox is not None and hasattr(store, "outbox"):
        store.outbox = outbox
    if indexer is not None and worker is not None and outbox is not None:
        indexer.register(worker, linger_s=settings.index_linger_s)
        outbox.add(index_rule(linger_s=settings.index_linger_s, skip_providers=[RETRIEVAL_LABEL]))
        indexer.queue_sweep(worker.queue)  # rows that have no index job (older, or paused)
    if worker is not None and hasattr(store, "interrupt_stale"):
        after = settings.turn_interrupted_after_s
        worker.every(min(60.0, after / 4), lambda: store.interrupt_stale(after))
    if worker is not None and engine is not None:
        from assistant.ops.schedule import schedule  # drift checks and canaries (issue 15)

        schedule(worker, engine, settings, budget)
    chain = GuardChain(guards if guards is not None else default_pipeline(
        max_chars=settings.max_message_chars, pii_modes=settings.pii_mode,
        pii_always=settings.pii_always, injection_input=settings.injection_input,
        scope=ScopeGuard.from_settings(settings)))
    facts_memory = _fact_memory(settings, jobs, worker, chain, chat)
    if facts_memory is not None:
        # Facts are recalled ahead of the turn memory; each user turn becomes a facts job.
        from memory.facts_recall import FactRecall, LayeredRecall

        assert outbox is not None  # fact memory needs the job queue
        memory = LayeredRecall(FactRecall(facts_memory), memory,
                               facts_share=settings.facts_budget_share)
        outbox.add(facts_rule)
    # An embedder's recorder is handed each turn; the outbox needs no handing (the
    # store wrote its jobs), but takes messages stored another way (``submit``).
    recorder = recorder if recorder is not None else outbox
    if documents is None and built_store:
        documents = grounding.default_documents(settings, engine)
    citations = grounding.citation_guard(chain, settings, _judge(settings, chat, tunables))
    tunables.follow(citations)
    parts = Parts(
        settings=settings, store=store, chat=chat, memory=memory, recorder=recorder,
        ledger=ledger, budget=budget, jobs=jobs, worker=worker, guards=chain,
        facts_memory=facts_memory, documents=documents, citation_guard=citations,
        review=ReviewQueue(engine) if engine is not None else None,
        summaries=_summaries(settings, engine, chat, worker), tunables=tunables, owned=owned)
    if worker is not None and settings.job_workers:
        worker.start()  # always on: a job another replica queued runs here within a poll
    if model is None:
        _import_providers_ahead(settings)
    return parts


def _import_providers_ahead(settings: Settings) -> None:
    """Import the remote providers' SDKs in the background now: the model is built on
    first use (``LazyModel``), and importing an SDK (the ``openai`` one: ~0.7 s) was most
    of a fresh process's first turn. Only imports; a failure shows up where it did."""
    from assistant.providers import registry

    found = [e for spec in settings.provider_specs
             if (e := registry.entry(spec)) is not None and e.remote]

    def run() -> None:
        for e in found:
            try:
                registry.provider_class(e)
            except Exception:  # the first turn imports it again and says why
                log.debug("importing provider %s ahead failed", e.target, exc_info=True)

    if found:
        threading.Thread(target=run, name="import-providers", daemon=True).start()


def _turn_memory(settings: Settings, store: MessageStore) -> tuple[Recall, TurnIndexer]:
    """Turns are indexed (by ``index`` jobs, on any replica) into the hybrid retriever
    they are recalled from."""
    from memory.generations import MemoryGenerations
    from memory.recall import TurnMemory
    from memory.retrieval import HybridRetriever
    from memory.vectors import open_chroma

    client = open_chroma(settings.chroma_path, settings.chroma_url)
    engine = getattr(store, "engine", None)  # the SQL store's writes bump memory generations
    retriever = HybridRetriever(client, cache_mb=settings.memory_cache_mb,
                                generations=MemoryGenerations(engine) if engine is not None else None)
    turns = TurnMemory(retriever, k=settings.recall_k)
    return turns, TurnIndexer(cast("ConversationStore", store), turns,
                              max_batch=settings.index_batch)


def _embedder_model(model: ChatModel | None, settings: Settings, ledger: Ledger | None,
                    budget: Budget | None) -> ChatModel | None:
    """An embedder's model gets what ``build_model`` gives a configured chain: the PII
    egress layer, and a ledger row per call it makes."""
    if model is None:
        return None
    from assistant.layers.extractive import wrap
    from assistant.layers.redaction import guard_egress

    model = guard_egress(model, settings.pii_mode)
    model = LedgerModel(model, ledger, budget) if ledger is not None else model
    return wrap(model, settings.extractive_answers)  # a small model leads with verified quotes


def _fact_memory(settings: Settings, jobs: JobQueue | None, worker: Workers | None,
                 guards: GuardChain, chat: LazyModel) -> FactMemory | None:
    """Fact memory with its ``facts`` job handler on the worker; None without a job
    queue (no SQL store) or with ``LASTMILE_FACTS_ENABLED`` off."""
    if jobs is None or worker is None or not settings.facts_enabled:
        return None
    from memory.vectors import open_chroma

    try:
        chroma = open_chroma(settings.chroma_path, settings.chroma_url)
    except LastmileError as exc:
        log.warning("fact search is off (facts stay in SQL): %s", exc)
        chroma = None
    return open_fact_memory(jobs, worker, chroma, guards=guards, settings=settings,
                            source=chat, injected=chat.injected, extract=extract_structured)


def _judge(settings: Settings, chat: LazyModel, tunables: Tunables) -> ModelJudge | None:
    """The citation judge per ``LASTMILE_VERIFY_MODEL`` (``assistant.judge``); under
    ``auto`` it asks only while a remote provider leads the chain (re-read per call, so an
    admin's change of chain takes effect) and never an embedder's injected model."""
    mode = settings.verify_model
    if mode == "off":
        return None

    def model() -> ChatModel | None:
        if mode == "auto" and (chat.injected or not remote_first(tunables.current())):
            return None
        return chat.model

    return ModelJudge(model)


def _summaries(settings: Settings, engine: Any, chat: LazyModel,
               worker: Workers | None) -> SessionSummaries | None:
    """The rolling summary (needs the SQL store's database); its folds run as
    ``summary`` jobs on the worker when there is one."""
    if engine is None or not settings.summarize_sessions:
        return None
    from memory.summary import Summariser
    from memory.summary_store import SummaryStore

    store = SummaryStore(engine)
    mode = settings.summary_model
    use_chat = mode == "chat" or (mode == "auto" and not chat.injected and remote_first(settings))
    summaries = SessionSummaries(store, Summariser(
        store, (lambda: chat.model) if use_chat else None,
        max_tokens=settings.summary_max_tokens,
        fold_tokens=settings.summary_fold_tokens, extract=extract_structured))
    if worker is not None:
        worker.register(SUMMARY_JOB, summaries.handle)
    return summaries
