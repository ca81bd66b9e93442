"""The `openai` provider: OpenAI chat completions, or any server that speaks them.

Only this module imports the ``openai`` SDK, and every SDK error is translated here
(see ``translate``), so the layers above branch on ``assistant.errors`` kinds only.
The SDK's own retries are off (``max_retries=0``): retrying lives in exactly one
layer above this one, and a second layer here would multiply waits and requests.
A reply that ends without a finish reason (no choices, cut stream, garbage) is a
provider failure, never a crash and never a silently short answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
from langchain_core.messages import convert_to_openai_messages

from assistant.errors import (
    ProviderError,
    ProviderUnavailable,
)
from assistant.providers.base import ModelChunk, ModelRequest, Usage
from assistant.providers.sdk import (
    SDKChatModel,
    require_event_stream,
    translate_sdk_error,
    transport_errors,
)

__all__ = ["DEFAULT_MODEL", "OpenAIModel", "translate"]

DEFAULT_MODEL = "gpt-4o-mini"
KEY_HINT = "OPENAI_API_KEY is not set; export it (or add it to .env) to use the openai provider"


#: What may escape the SDK: its own errors, transport errors, and JSON/validation
#: errors (ValueError) from a body that is not what the API promises.
SDK_ERRORS: tuple[type[Exception], ...] = (openai.OpenAIError, ValueError, *transport_errors())
#: ...and our own, raised inside the stream loop (``require_event_stream``); translated alike.
_CAUGHT: tuple[type[Exception], ...] = (*SDK_ERRORS, ProviderError)


def translate(exc: BaseException, label: str, partial: str = "") -> ProviderError:
    """Map a openai SDK failure to the error tree."""
    return translate_sdk_error(exc, label, partial, status_error=openai.APIStatusError,
                               connection_error=openai.APIConnectionError)


class _Reply:
    """Folds stream chunks into text deltas, a finish reason and usage; rejects nonsense."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.parts: list[str] = []
        self.finish: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: Any) -> str:
        if not isinstance(chunk, openai.BaseModel):  # the SDK passes non-object JSON through as-is
            raise ProviderUnavailable(f"{self.label} sent a chunk that is not a JSON object",
                                      provider=self.label)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            prompt, completion = getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)
            if not isinstance(prompt, int) or not isinstance(completion, int):
                raise ProviderUnavailable(f"{self.label} sent a malformed usage block", provider=self.label)
            self.usage = Usage(prompt, completion)
        choices = getattr(chunk, "choices", None) or []
        if not isinstance(choices, list):
            raise ProviderUnavailable(f"{self.label} sent choices that are not a list", provider=self.label)
        text = ""
        for choice in choices:
            if getattr(choice, "index", 0) != 0:
                continue
            content = getattr(getattr(choice, "delta", None), "content", None)
            if content is not None and not isinstance(content, str):
                raise ProviderUnavailable(f"{self.label} sent non-text content", provider=self.label)
            text += content or ""
            self.finish = getattr(choice, "finish_reason", None) or self.finish
        if text:
            self.parts.append(text)
        return text

    def last_chunk(self) -> ModelChunk:
        if self.finish is None:
            raise ProviderUnavailable(f"{self.label} ended the reply without a finish reason "
                                      "(no choices, or a truncated stream)", provider=self.label)
        return ModelChunk(usage=self.usage, finish_reason=self.finish)


class OpenAIModel(SDKChatModel):
    """Chat completions over the official SDK, streamed, with usage in the last chunk."""

    provider = "openai"

    default_model = DEFAULT_MODEL
    settings_prefix = "openai"
    key_hint = KEY_HINT

    def __init__(self, model: str | None = None, *, context_window: int = 128_000, **kwargs: Any) -> None:
        super().__init__(model, context_window=context_window, **kwargs)

    def _timeout(self, read_s: float, connect_s: float) -> Any:
        return openai.Timeout(read_s, connect=connect_s)

    def _new_client(self, *, asynchronous: bool) -> Any:
        return (openai.AsyncOpenAI if asynchronous else openai.OpenAI)(**self._options)

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        """The request body. ``max_tokens`` (not ``max_completion_tokens``): every
        OpenAI-compatible server understands it."""
        params: dict[str, Any] = {
            "model": self.model, "messages": convert_to_openai_messages(list(request.messages)),
            "max_tokens": request.max_tokens, "temperature": request.temperature,
            "stream": True, "stream_options": {"include_usage": True}}
        if request.stop:
            params["stop"] = list(request.stop)
        if request.seed is not None:
            params["seed"] = request.seed
        if request.response_schema is not None:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "reply", "schema": request.response_schema, "strict": False}}
        return params

    def _create_args(self, request: ModelRequest) -> dict[str, Any]:
        """``chat.completions.create`` keyword arguments for ``request``. The messages go
        in ``extra_body`` (the SDK's documented way to send JSON properties as given; it
        overrides the body's ``messages``), so the request body is the same JSON: the SDK
        would otherwise walk every message through its TypedDict unions before sending,
        a sixth of a served turn's CPU with a long window and nothing to change in them."""
        params = self._params(request)
        return {**params, "messages": [], "extra_body": {"messages": params["messages"]}}

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        reply = _Reply(self.label)
        try:
            with require_event_stream(self._client.chat.completions.create(**self._create_args(request)),
                                      self.label) as stream:
                for chunk in stream:
                    if text := reply.feed(chunk):
                        yield ModelChunk(text=text)
            last = reply.last_chunk()
        except _CAUGHT as exc:
            raise translate(exc, self.label, "".join(reply.parts)) from exc
        yield last

    async def arequest(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        client = self._async_client()
        reply = _Reply(self.label)
        try:
            stream = await client.chat.completions.create(**self._create_args(request))
            async with require_event_stream(stream, self.label):
                async for chunk in stream:
                    if text := reply.feed(chunk):
                        yield ModelChunk(text=text)
            last = reply.last_chunk()
        except _CAUGHT as exc:
            raise translate(exc, self.label, "".join(reply.parts)) from exc
        yield last
