"""Any lastmile ``ChatModel`` as a langchain-core chat model, so it drops into LCEL::

    chain = prompt | LastmileChatModel.from_spec("openai:gpt-4o-mini,local") | StrOutputParser()

Wrapping one provider or the whole chain from ``build_model`` keeps everything the chain
does — retry, circuit breakers, fallback while streaming, the ledger and budgets — this
class only translates between the two message protocols. Errors are not wrapped: callers
catch ``assistant.errors`` kinds (``ProviderUnavailable``, ``AuthenticationFailed`` ...).

A fallback mid-stream cannot take back tokens an LCEL consumer already has, so ``stream``
yields a marker chunk whose ``response_metadata["restart"]`` is true (with ``discarded``,
``reason``, ``provider``), the same contract as the orchestrator's ``Restart``: a UI
clears what it showed. ``invoke`` returns only the answering provider's text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from assistant.errors import UnknownProvider
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest, Usage
from assistant.settings import Settings

if TYPE_CHECKING:
    from memory.budget import Budget
    from memory.ledger import Ledger

__all__ = ["LastmileChatModel"]


def _usage(usage: Usage | None) -> UsageMetadata | None:
    if usage is None:
        return None
    return UsageMetadata(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                         total_tokens=usage.total_tokens)


class _Fold:
    """Folds our chunks into one reply; a restart drops the text before it."""

    def __init__(self, label: str) -> None:
        self.parts: list[str] = []
        self.provider, self.restarts = label, 0
        self.usage: Usage | None = None
        self.finish: str | None = None

    def feed(self, chunk: ModelChunk) -> None:
        self.provider = chunk.provider or self.provider
        if chunk.restart:
            self.parts.clear()
            self.restarts += 1
        self.parts.append(chunk.text)
        self.usage = chunk.usage or self.usage
        self.finish = chunk.finish_reason or self.finish

    def result(self) -> ChatResult:
        meta = {"finish_reason": self.finish, "model_name": self.provider, "restarts": self.restarts}
        message = AIMessage(content="".join(self.parts), usage_metadata=_usage(self.usage),
                            response_metadata=meta)
        return ChatResult(generations=[ChatGeneration(message=message)],
                          llm_output={"model_name": self.provider})


class LastmileChatModel(BaseChatModel):
    """A langchain-core chat model backed by a lastmile ``ChatModel`` (``chat_model``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chat_model: ChatModel = Field(exclude=True)
    max_tokens: int = Field(256, ge=1, description="Most tokens generated per call.")
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    #: Recorded with each call in the ledger (``lastmile usage --by purpose``).
    purpose: str = "langchain"
    #: Whose budget and ledger rows the calls count against.
    user_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, ledger: Ledger | None = None,
                      budget: Budget | None = None, **fields: Any) -> LastmileChatModel:
        """The configured chain (``LASTMILE_PROVIDERS``), resilient, with its reply limits."""
        from assistant.providers import build_model

        settings = settings or Settings()
        fields = {"max_tokens": settings.max_reply_tokens, "temperature": settings.temperature, **fields}
        return cls(chat_model=build_model(settings, ledger, budget), **fields)

    @classmethod
    def from_spec(cls, spec: str, settings: Settings | None = None, **kwargs: Any) -> LastmileChatModel:
        """A chain from a ``LASTMILE_PROVIDERS``-style spec, e.g. ``"openai:gpt-4o-mini,local"``;
        keys, base URLs and timeouts still come from ``settings`` (default: the environment)."""
        if not [p for p in spec.split(",") if p.strip()]:
            raise UnknownProvider(f"empty provider spec {spec!r}; e.g. 'openai:gpt-4o-mini,local'")
        base = settings or Settings()
        return cls.from_settings(base.model_copy(update={"providers": spec}), **kwargs)

    @property
    def _llm_type(self) -> str:
        return "lastmile"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """What makes two instances answer differently (also langchain's cache key)."""
        return {"model": self.chat_model.label, "max_tokens": self.max_tokens,
                "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="lastmile", ls_model_name=self.chat_model.label,
                                 ls_model_type="chat",
                                 ls_temperature=kwargs.get("temperature", self.temperature),
                                 ls_max_tokens=kwargs.get("max_tokens", self.max_tokens))
        if stop:
            params["ls_stop"] = stop
        return params

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Any = None) -> int:
        """Counted by the wrapped model's own tokenizer (llama.cpp's for ``local``)."""
        return self.chat_model.count_tokens(messages)

    def _request(self, messages: list[BaseMessage], stop: list[str] | None,
                 kwargs: dict[str, Any]) -> ModelRequest:
        return ModelRequest(list(messages), max_tokens=int(kwargs.get("max_tokens", self.max_tokens)),
                            temperature=float(kwargs.get("temperature", self.temperature)),
                            stop=tuple(stop or ()), response_schema=kwargs.get("response_schema"),
                            metadata={"purpose": self.purpose, "user_id": self.user_id})

    def _lc_chunk(self, chunk: ModelChunk) -> ChatGenerationChunk | None:
        if chunk.restart:
            meta = {"restart": True, "discarded": chunk.discarded, "reason": chunk.reason,
                    "provider": chunk.provider or ""}
            return ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=meta))
        if chunk.usage is not None or chunk.finish_reason is not None:
            meta = {"finish_reason": chunk.finish_reason,
                    "model_name": chunk.provider or self.chat_model.label}
            return ChatGenerationChunk(message=AIMessageChunk(
                content=chunk.text, usage_metadata=_usage(chunk.usage), response_metadata=meta,
                chunk_position="last"))
        if chunk.text:
            return ChatGenerationChunk(message=AIMessageChunk(content=chunk.text))
        return None

    def _convert(self, chunks: Iterable[ModelChunk]) -> Iterator[ChatGenerationChunk]:
        for chunk in chunks:
            if (converted := self._lc_chunk(chunk)) is not None:
                yield converted

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        fold = _Fold(self.chat_model.label)
        for chunk in self.chat_model.request(self._request(messages, stop, kwargs)):
            fold.feed(chunk)
        return fold.result()

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        iterator = iter(self.chat_model.request(self._request(messages, stop, kwargs)))
        try:
            yield from self._convert(iterator)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a consumer that stops early frees the connection / breaker probe

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None,
                         **kwargs: Any) -> ChatResult:
        fold = _Fold(self.chat_model.label)
        async for chunk in self.chat_model.arequest(self._request(messages, stop, kwargs)):
            fold.feed(chunk)
        return fold.result()

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        stream = self.chat_model.arequest(self._request(messages, stop, kwargs))
        try:
            async for chunk in stream:
                if (converted := self._lc_chunk(chunk)) is not None:
                    yield converted
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator; the protocol says AsyncIterator
