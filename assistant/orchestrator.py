"""The turn loop. Small on purpose: storage, recall and guards sit behind protocols.

One turn: guard the input → store the user message (before any model sees it) →
build the context within the token budget → stream from the provider → guard the
output → store the reply → hand the turn to the indexer. A failure at the model ends
in a stored, clearly marked reply; the user's message is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Generator

from assistant.context import build_context
from assistant.errors import LastmileError, StreamInterrupted
from assistant.protocols import MessageStore, TurnRecorder
from assistant.providers import ChatModel, ModelRequest, Usage, build_model
from assistant.reply import AsyncReplyStream, Reply, ReplyStream
from assistant.settings import Settings
from guardrails import Guard, GuardChain, GuardContext, InputLimits
from memory.store import SessionInfo, StoredMessage

__all__ = ["Assistant"]

log = logging.getLogger(__name__)
HISTORY_SCAN = 200  # newest messages considered for the window; plenty for any budget


class Assistant:
    """A conversational assistant with durable history.

    ``Assistant()`` builds everything from ``Settings()`` (the environment). Tests and
    embedders pass their own ``model``, ``store``, ``recorder`` or ``guards``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model: ChatModel | None = None,
        store: MessageStore | None = None,
        recorder: TurnRecorder | None = None,
        guards: list[Guard] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._owned: list[object] = []
        if store is None:
            from memory.db import open_engine
            from memory.store import ConversationStore

            store = ConversationStore(open_engine(self.settings.resolved_database_url))
        self.store = store
        if recorder is None and self.settings.index_turns:
            recorder = self._default_recorder()
        self.recorder = recorder
        self._model = model
        self.guards = GuardChain(
            guards if guards is not None else [InputLimits(self.settings.max_message_chars)]
        )

    @property
    def model(self) -> ChatModel:
        """The configured model, built on first use (so a UI can start and explain a
        missing model file instead of crashing)."""
        if self._model is None:
            self._model = build_model(self.settings)
        return self._model

    def _default_recorder(self) -> TurnRecorder:
        from memory.indexer import TurnIndexer
        from memory.vectors import TurnIndex, open_chroma

        client = open_chroma(self.settings.chroma_path, self.settings.chroma_url)
        indexer = TurnIndexer(self.store, TurnIndex(client))  # type: ignore[arg-type]
        indexer.catch_up()
        self._owned.append(indexer)
        return indexer

    # sessions ---------------------------------------------------------------------
    def new_session(self, user_id: str = "default", title: str | None = None) -> SessionInfo:
        return self.store.create_session(user_id, title)

    def sessions(self, user_id: str = "default") -> list[SessionInfo]:
        return self.store.list_sessions(user_id)

    def rename_session(self, session_id: str, title: str, *, user_id: str = "default") -> SessionInfo:
        return self.store.rename_session(user_id, session_id, title)

    def history(self, session_id: str, user_id: str = "default") -> list[StoredMessage]:
        """Every stored message of the session, oldest first."""
        return self.store.history(user_id, session_id)

    # turns --------------------------------------------------------------------------
    def stream(self, text: str, *, session_id: str, user_id: str = "default") -> ReplyStream:
        """Validate and store the message now; iterate the result for reply chunks.

        Raises ``InputRejected`` here, before anything is stored, for unusable input.
        """
        ctx = GuardContext(user_id=user_id, session_id=session_id)
        clean = self.guards.before_input(ctx, text)
        tokens = self.model.count_tokens([_human(clean)])
        stored = self.store.add_message(user_id, session_id, "user", clean, token_count=tokens)
        return ReplyStream(self._turn(ctx, stored))

    def chat(self, text: str, *, session_id: str, user_id: str = "default") -> Reply:
        stream = self.stream(text, session_id=session_id, user_id=user_id)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    async def achat(self, text: str, *, session_id: str, user_id: str = "default") -> Reply:
        return await asyncio.to_thread(self.chat, text, session_id=session_id, user_id=user_id)

    async def astream(self, text: str, *, session_id: str, user_id: str = "default") -> AsyncReplyStream:
        stream = await asyncio.to_thread(self.stream, text, session_id=session_id, user_id=user_id)
        return AsyncReplyStream(stream)

    def _turn(self, ctx: GuardContext, user_msg: StoredMessage) -> Generator[str, None, Reply]:
        settings, model = self.settings, self.model
        budget = settings.context_budget_tokens or max(
            64, model.context_window - settings.max_reply_tokens)
        history = self.store.recent(ctx.user_id, ctx.session_id, HISTORY_SCAN)
        messages, report = build_context(settings.system_prompt, history, budget=budget,
                                         count=model.count_tokens)
        request = ModelRequest(messages, max_tokens=settings.max_reply_tokens,
                               temperature=settings.temperature)
        parts: list[str] = []
        usage: Usage | None = None
        provider = model.label
        status, error, user_error = "ok", None, None
        started = time.perf_counter()
        first_token_ms: float | None = None
        try:
            for chunk in model.request(request):
                provider = chunk.extra.get("provider", provider)
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.text:
                    if first_token_ms is None:
                        first_token_ms = (time.perf_counter() - started) * 1000
                    parts.append(chunk.text)
                    yield chunk.text
        except LastmileError as exc:
            status = "incomplete" if parts else "error"
            error, user_error = f"{type(exc).__name__}: {exc}", exc.user_message
            provider = getattr(exc, "provider", "") or provider
            if isinstance(exc, StreamInterrupted) and not parts and exc.partial:
                parts.append(exc.partial)
                status = "incomplete"
            log.warning("turn failed at the model (%s): %s", provider, exc)
        except GeneratorExit:
            status, error, user_error = "incomplete", "cancelled", "The reply was stopped."
            raise
        except Exception as exc:
            # A bug, not an outage: keep the record straight, then let it surface.
            status, error = ("incomplete" if parts else "error"), f"{type(exc).__name__}: {exc}"
            raise
        finally:
            latency = (time.perf_counter() - started) * 1000
            text = "".join(parts)
            if status == "ok":
                text = self.guards.after_model(ctx, text)
            # What this reply will cost when it is fed back as context (template included).
            cost = model.count_tokens([_ai(text)])
            completion = usage.completion_tokens if usage else cost
            prompt = usage.prompt_tokens if usage else model.count_tokens(messages)
            stored = self.store.add_message(
                ctx.user_id, ctx.session_id, "assistant", text, status=status, error=error,
                provider=provider, latency_ms=latency, prompt_tokens=prompt,
                completion_tokens=completion, token_count=cost,
                call={"provider": provider, "status": status, "error": error,
                      "prompt_tokens": prompt, "completion_tokens": completion,
                      "latency_ms": latency, "first_token_ms": first_token_ms})
            if self.recorder is not None and status == "ok":
                self.recorder.submit([user_msg, stored])
        return Reply(text=text, provider=provider, session_id=ctx.session_id,
                     message_id=stored.id, user_message_id=user_msg.id,
                     usage=Usage(prompt, completion), status=status, error=user_error,
                     latency_ms=latency, context=report)

    # lifecycle ----------------------------------------------------------------------
    def flush(self) -> None:
        """Wait for background work (turn indexing) to finish."""
        if self.recorder is not None:
            self.recorder.flush()

    def close(self) -> None:
        for owned in self._owned:
            owned.close()  # type: ignore[attr-defined]
        self._owned.clear()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _human(text: str):  # type: ignore[no-untyped-def]
    from langchain_core.messages import HumanMessage

    return HumanMessage(content=text)


def _ai(text: str):  # type: ignore[no-untyped-def]
    from langchain_core.messages import AIMessage

    return AIMessage(content=text)
