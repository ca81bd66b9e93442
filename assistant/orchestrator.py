"""The turn loop. Small on purpose: storage, recall and guards sit behind protocols.

One turn: guard the input → store the user message (before any model sees it), with
its follow-up jobs (index, facts) in the same transaction (the store's outbox) →
build the context within the token budget → stream from the provider → guard the
output → store the reply, marking the user message answered or interrupted. A failure
at the model ends in a stored, clearly marked reply; the user's message is never lost,
and one whose reply never came (even if the process died) is marked interrupted and
kept out of later prompts.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from assistant import grounding, telemetry, wiring
from assistant.context import ContextReport
from assistant.deprecation import Moved
from assistant.errors import DatabaseUnavailable, LastmileError, StreamInterrupted, TurnStopped
from assistant.facts import Facts
from assistant.layers.consume import consume
from assistant.layers.ledger import DEFER_KEY, DeferredRows
from assistant.protocols import Documents, MessageStore, Recall, TurnRecorder
from assistant.providers import REMOTE, ChatModel, ModelRequest, Usage
from assistant.providers.base import approx_message_tokens, first_leaf
from assistant.records import StoredMessage
from assistant.reply import STOPPED, AsyncReplyStream, Reply, ReplyStream
from assistant.safemode import RETRIEVAL_LABEL
from assistant.sessions import Sessions, SessionStore
from assistant.settings import Settings
from assistant.stages import timed
from assistant.turn import Destination
from assistant.turn_context import turn_context
from guardrails import Guard, GuardContext
from memory.dense import prefetch_query

__all__ = ["Assistant"]

log = logging.getLogger(__name__)
SchemaT = TypeVar("SchemaT", bound=BaseModel)


@dataclass
class _Outcome:
    """What happened at the model during one turn, filled in as the stream runs."""

    provider: str = "unavailable"
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    status: str = "ok"
    error: str | None = None
    user_error: str | None = None
    first_token_ms: float | None = None
    finish_reason: str | None = None
    restarts: int = 0
    notice: str | None = None
    latency_ms: float = 0.0
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def fail(self, exc: LastmileError) -> None:
        self.status = "incomplete" if self.parts else "error"
        self.error, self.user_error = f"{type(exc).__name__}: {exc}", exc.user_message
        self.provider = getattr(exc, "provider", "") or self.provider
        if isinstance(exc, StreamInterrupted) and not self.parts and exc.partial:
            self.parts.append(exc.partial)
            self.status = "incomplete"


class Assistant:
    """A conversational assistant with durable history.

    ``Assistant()`` builds everything from ``Settings()`` (the environment) through
    ``assistant.wiring``. Tests and embedders pass their own ``model``, ``store``,
    ``recorder``, ``memory``, ``guards`` or ``documents``. Besides turns it offers
    ``bot.sessions`` (``assistant.sessions``), ``bot.facts`` (``assistant.facts``),
    ``bot.chats`` (``assistant.chats``: search, export, reply versions, collection scopes),
    ``bot.review`` (the review queue) and ``bot.summaries`` (rolling summaries).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model: ChatModel | None = None,
        store: MessageStore | None = None,
        recorder: TurnRecorder | None = None,
        memory: Recall | None = None,
        guards: list[Guard] | None = None,
        documents: Documents | None = None,
    ) -> None:
        self.settings = settings or Settings()
        parts = wiring.build(self.settings, model=model, store=store, recorder=recorder,
                             memory=memory, guards=guards, documents=documents)
        self._chat, self._owned = parts.chat, parts.owned
        self.store, self.memory, self.recorder = parts.store, parts.memory, parts.recorder
        self.ledger, self.budget = parts.ledger, parts.budget
        self.jobs, self.worker = parts.jobs, parts.worker
        self.guards, self.citation_guard = parts.guards, parts.citation_guard
        self.documents, self.review, self.summaries = parts.documents, parts.review, parts.summaries
        self.facts_memory = parts.facts_memory
        #: Run-time overrides an admin sets (the Settings tab), read by ``settings``.
        self.tunables, self.runtime = parts.tunables, parts.tunables.runtime
        # What a person does besides talking, as sub-objects; the turn loop is handed in.
        self.sessions = Sessions(cast(SessionStore, self.store), self.memory,
                                 stream=self.stream, redo=self._redo)
        self.facts = Facts(self.facts_memory)
        from assistant.chats import ChatExtras  # search, export, versions, scopes (issue 16)

        self.chats = ChatExtras(cast(SessionStore, self.store), self.sessions)

    @property
    def settings(self) -> Settings:
        """The settings in force: the environment's, with what an admin changed at run
        time (``bot.runtime``: the Settings tab, for every process on the database) over them."""
        tunables = self.__dict__.get("tunables")
        return tunables.current() if tunables is not None else self.__dict__["_base_settings"]

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._base_settings = value
        if "tunables" in self.__dict__:
            self.tunables.base = value

    @property
    def model(self) -> ChatModel:
        """The configured model, built on first use (so a UI can start and explain a
        missing model file instead of crashing)."""
        return self._chat.model

    # deprecated names: these calls moved to ``bot.sessions`` and ``bot.facts``
    new_session = Moved("sessions", "new")
    rename_session = Moved("sessions", "rename")
    history = Moved("sessions", "history")
    delete_session = Moved("sessions", "delete")
    regenerate = Moved("sessions", "regenerate")
    edit_and_resend = Moved("sessions", "edit_and_resend")
    feedback = Moved("sessions", "feedback")
    session_summary = Moved("sessions", "summary")
    edit_fact = Moved("facts", "edit")
    forget = Moved("facts", "forget")
    fact_sources = Moved("facts", "sources")

    # turns --------------------------------------------------------------------------
    def stream(self, text: str, *, session_id: str, user_id: str = "default",
               cache: bool = True) -> ReplyStream:
        """Validate and store the message now; iterate the result for reply chunks.
        ``cache=False`` skips the reply cache for this turn (e.g. "regenerate").

        Raises ``InputRejected`` here, before anything is stored, for unusable input.
        Everything after the message is stored ends in a stored reply, even when the
        model cannot be loaded at all.
        """
        ctx = GuardContext(user_id=user_id, session_id=session_id,
                           destination=self._destination(), cache=cache,
                           collections=self._scope(user_id, session_id))
        with timed(ctx, "guards"):
            clean = self.guards.before_input(ctx, text)
        self._embed_ahead(clean)
        try:
            tokens: int | None = self.model.count_tokens([HumanMessage(content=clean)])
        except LastmileError:
            tokens = None  # the turn will report the model problem; the message is kept
        with timed(ctx, "storage"):
            stored = self.store.add_message(user_id, session_id, "user", clean, token_count=tokens,
                                            reply_state="pending")
        return ReplyStream(self._turn(ctx, stored))

    def _redo(self, user_id: str, session_id: str, message: StoredMessage) -> ReplyStream:
        """Answer a stored user message again (``bot.sessions.regenerate``): a new answer
        is wanted, so never the cached one."""
        ctx = GuardContext(user_id=user_id, session_id=session_id,
                           destination=self._destination(), cache=False,
                           seed=secrets.randbelow(2**31),  # a new answer: a new seed
                           collections=self._scope(user_id, session_id))
        self._embed_ahead(message.content)
        mark = getattr(self.store, "set_reply_state", None)
        if mark is not None:  # answered anew: pending again (an interrupted one is in the prompt)
            mark(user_id, session_id, message.id, "pending")
        return ReplyStream(self._turn(ctx, message))

    def _embed_ahead(self, query: str) -> None:
        """The query's embedding (documents, memories, facts search with it) starts on
        the bounded background thread now, so it overlaps storing the message."""
        if self.documents is not None or self.memory is not None:
            prefetch_query(query)

    def _scope(self, user_id: str, session_id: str) -> tuple[str, ...] | None:
        """The document collections this chat may use (None: the default scope)."""
        try:
            return self.chats.scope(session_id, user_id=user_id)
        except LastmileError:
            return None

    def chat(self, text: str, *, session_id: str, user_id: str = "default",
             cache: bool = True) -> Reply:
        stream = self.stream(text, session_id=session_id, user_id=user_id, cache=cache)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    async def achat(self, text: str, *, session_id: str, user_id: str = "default",
                    cache: bool = True) -> Reply:
        return await asyncio.to_thread(self.chat, text, session_id=session_id, user_id=user_id,
                                       cache=cache)

    async def astream(self, text: str, *, session_id: str, user_id: str = "default",
                      cache: bool = True) -> AsyncReplyStream:
        stream = await asyncio.to_thread(self.stream, text, session_id=session_id, user_id=user_id,
                                         cache=cache)
        return AsyncReplyStream(stream)

    def extract(self, schema: type[SchemaT], text_or_messages: str | Sequence[BaseMessage], *,
                user_id: str = "default", session_id: str | None = None,
                instructions: str | None = None, max_reasks: int = 1) -> SchemaT:
        """A validated ``schema`` instance from the text (see ``assistant.extract``);
        ``ExtractionFailed`` rather than a half-filled object."""
        from assistant.extract import extract

        return extract(self.model, schema, text_or_messages, instructions=instructions,
                       metadata={"user_id": user_id, "session_id": session_id},
                       max_reasks=max_reasks, max_tokens=self.settings.max_reply_tokens)

    def _destination(self) -> Destination:
        """``remote`` when the first provider in the chain sends text off this machine
        (PII guards redact then); ``local`` otherwise."""
        try:
            model: object = self.model
        except LastmileError:
            return "local"
        return "remote" if getattr(first_leaf(model), "provider", "") in REMOTE else "local"

    def _context(self, ctx: GuardContext, model: ChatModel,
                 query: str) -> tuple[list[BaseMessage], ContextReport]:
        """Summary, memories, documents and recent turns, each within its share of the
        budget (see ``assistant.turn_context``)."""
        return turn_context(self, ctx, model, query)

    def _turn(self, ctx: GuardContext, user_msg: StoredMessage) -> Generator[str, None, Reply]:
        out = _Outcome()
        model: ChatModel | None = None
        messages: list[BaseMessage] = []
        report: ContextReport | None = None
        started = time.perf_counter()
        model_started: float | None = None
        # The turn's ledger rows commit with its reply (one transaction, not one each).
        deferred = DeferredRows() if getattr(self.store, "writes_along", False) else None
        ctx.question = user_msg.content
        try:
            model = self.model
            out.provider = model.label
            with timed(ctx, "context"):
                messages, report = self._context(ctx, model, user_msg.content)
            request = ModelRequest(
                messages, max_tokens=self.settings.max_reply_tokens,
                temperature=self.settings.temperature, seed=ctx.seed,
                metadata={"purpose": "chat", "user_id": ctx.user_id,
                          "session_id": ctx.session_id, "turn_id": user_msg.id,
                          "cache": ctx.cache, "snippets": ctx.snippets,
                          telemetry.TRACE_KEY: telemetry.turn_trace(ctx),
                          **({DEFER_KEY: deferred} if deferred is not None else {})})
            model_started = time.perf_counter()
            for piece in consume(model, request, out):  # text and Restart markers
                if piece and out.first_token_ms is None:
                    out.first_token_ms = (time.perf_counter() - started) * 1000
                yield piece
            yield from grounding.reask_once(self.citation_guard, model, request, ctx, out)
        except TurnStopped as exc:  # the person pressed Stop: keep what was written
            out.status, out.error, out.user_error = "incomplete", STOPPED, exc.user_message
        except LastmileError as exc:
            out.fail(exc)
            log.warning("turn failed at the model (%s): %s", out.provider, exc)
        except GeneratorExit:
            out.status, out.error, out.user_error = "incomplete", "cancelled", "The reply was stopped."
            raise
        except Exception as exc:
            # A bug, not an outage: keep the record straight, then let it surface.
            out.status = "incomplete" if out.parts else "error"
            out.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            out.latency_ms = (time.perf_counter() - started) * 1000
            if model_started is not None:
                ctx.stages_ms["model"] = round(
                    (time.perf_counter() - model_started) * 1000, 2)
            try:
                stored = self._store_reply(ctx, user_msg, model, messages, out, report, deferred)
            finally:  # the turn's span and metrics, from the state it ends with
                telemetry.finish_turn(ctx, out, question=user_msg.content, answer=out.text)
        return Reply(text=out.text, provider=out.provider, session_id=ctx.session_id,
                     message_id=stored.id, user_message_id=user_msg.id,
                     usage=Usage(out.prompt_tokens, out.completion_tokens), status=out.status,
                     error=out.user_error, latency_ms=out.latency_ms, context=report,
                     finish_reason=out.finish_reason, notice=out.notice,
                     **grounding.reply_fields(ctx))

    def _store_reply(self, ctx: GuardContext, user_msg: StoredMessage, model: ChatModel | None,
                     messages: list[BaseMessage], out: _Outcome, report: ContextReport | None,
                     deferred: DeferredRows | None = None) -> StoredMessage:
        out.text = "".join(out.parts)
        with timed(ctx, "verification"):
            if out.status == "ok":
                out.text = self.guards.after_model(ctx, out.text)
        count = model.count_tokens if model is not None else approx_message_tokens
        # What this reply will cost when it is fed back as context (template included).
        cost = count([AIMessage(content=out.text)]) if out.text else 0
        out.completion_tokens = out.usage.completion_tokens if out.usage else cost
        out.prompt_tokens = out.usage.prompt_tokens if out.usage else (count(messages) if messages else 0)
        with timed(ctx, "verification"):
            confidence, doubts = grounding.assess(ctx, out)
        fields = dict(
            status=out.status, error=out.error, provider=out.provider, latency_ms=out.latency_ms,
            prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
            token_count=cost, finish_reason=out.finish_reason, reply_to=user_msg.id,
            context=None if report is None else grounding.reply_record(
                ctx, report, confidence, notice=out.notice,
                reply_reserve=self.settings.max_reply_tokens).to_dict())
        rows = deferred.take() if deferred is not None else []
        alerts: list = []

        def ledger_rows(conn: Connection) -> None:
            alerts[:] = DeferredRows.write(rows, conn)

        with timed(ctx, "storage"):
            try:
                stored = self.store.add_message(ctx.user_id, ctx.session_id, "assistant", out.text,
                                                **fields, **({"also": ledger_rows} if rows else {}))
            except (SQLAlchemyError, DatabaseUnavailable):
                if not rows:
                    raise
                # As before deferral: the ledger on its own (a failure there is logged, never
                # raised), then the reply on its own.
                DeferredRows.flush(rows)
                alerts.clear()
                stored = self.store.add_message(ctx.user_id, ctx.session_id, "assistant", out.text,
                                                **fields)
        DeferredRows.notify(alerts)
        grounding.submit_review(self.review, self.settings, ctx, user_msg.content, stored,
                                confidence, doubts)
        # What the user said is memory even when no model answered it (facts included); a
        # failed reply is not, nor a retrieval-only one (it only quotes memories back).
        # The store's outbox already wrote those jobs with each message (transactional);
        # an embedder's own recorder is handed the turn here.
        if self.recorder is not None and not getattr(self.recorder, "transactional", False):
            keep_reply = out.status == "ok" and out.provider != RETRIEVAL_LABEL
            self.recorder.submit([user_msg, stored] if keep_reply else [user_msg])
        return stored

    # operations ---------------------------------------------------------------------
    def set_kill_switch(self, on: bool, *, by: str | None = None) -> None:
        """Stop (or resume) every remote model call, in every process on this database;
        turns meanwhile answer in safe mode (see ``assistant.control``)."""
        from assistant.control import ControlFlags

        ControlFlags(getattr(self.store, "engine", None)).set_kill_switch(on, by=by)

    # lifecycle ----------------------------------------------------------------------
    def flush(self) -> None:
        """Wait for background work (indexing, facts and summary jobs, budget alert
        webhooks) to finish; starts this process's workers if they are off."""
        if self.recorder is not None:
            self.recorder.flush()
        if self.budget is not None:
            self.budget.flush()
        if self.worker is not None:
            self.worker.flush(self.settings.job_flush_timeout_s)

    def close(self) -> None:
        for owned in self._owned:
            owned.close()
        self._owned.clear()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

