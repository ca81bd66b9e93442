"""The `anthropic` provider: Claude over the Messages API.

Only this module imports the ``anthropic`` SDK; every SDK error is translated here, and
the SDK's own retries are off (``max_retries=0``; retrying lives in one layer above).
System messages travel as ``system=``, as the API wants. Usage comes from the stream:
input tokens in ``message_start``, output tokens in the last ``message_delta``. A stream
that ends without a stop reason is a provider failure, never a silently short answer.

``response_schema``: structured output the way every Claude model supports it - a forced
call of one tool (``reply``) whose ``input_schema`` is the schema; the tool input is the
reply. The schema is also stated in the system prompt, so an Anthropic-compatible server
that ignores tools still answers in JSON as text. Either way the reply is buffered and
must parse (a Markdown fence is stripped), else ``ProviderUnavailable``; conformance to
the schema is checked by the caller (``assistant.extract``).

``temperature`` is not sent: the Messages API this SDK speaks (anthropic 2.x,
``anthropic-version: 2026-10-21``) no longer takes it, and ``create()`` rejects it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anthropic
from langchain_core.messages import BaseMessage, convert_to_openai_messages

from assistant.errors import ProviderError, ProviderUnavailable
from assistant.providers.base import ModelChunk, ModelRequest, Usage
from assistant.providers.sdk import (
    SDKChatModel,
    require_event_stream,
    translate_sdk_error,
    transport_errors,
)

__all__ = ["DEFAULT_MODEL", "AnthropicModel", "translate"]

DEFAULT_MODEL = "claude-sonnet-4-5"
KEY_HINT = "ANTHROPIC_API_KEY is not set; export it (or add it to .env) to use the anthropic provider"
JSON_INSTRUCTION = ("Reply with a single JSON value and nothing else (no prose, no Markdown) "
                    "that satisfies this JSON schema:\n{schema}")
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "stop"}
REPLY_TOOL = "reply"


#: What may escape the SDK: its own errors, transport errors, and JSON/validation
#: errors (ValueError) from a body that is not what the API promises.
SDK_ERRORS: tuple[type[Exception], ...] = (anthropic.AnthropicError, ValueError, *transport_errors())
#: ...and our own, raised inside the stream loop (``require_event_stream``); translated alike.
_CAUGHT: tuple[type[Exception], ...] = (*SDK_ERRORS, ProviderError)


def translate(exc: BaseException, label: str, partial: str = "") -> ProviderError:
    """Map an anthropic SDK failure to the error tree."""
    return translate_sdk_error(exc, label, partial, status_error=anthropic.APIStatusError,
                               connection_error=anthropic.APIConnectionError)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def to_anthropic(messages: Sequence[BaseMessage]) -> tuple[str, list[dict[str, str]]]:
    """``(system, messages)``: system text pulled out; empty turns dropped (the API rejects them)."""
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for message in convert_to_openai_messages(list(messages)):
        text = _text(message.get("content"))
        if message["role"] in ("system", "developer"):
            system.append(text)
        elif text:
            turns.append({"role": "assistant" if message["role"] == "assistant" else "user",
                          "content": text})
    return "\n\n".join(s for s in system if s), turns


class _Reply:
    """Folds stream events into text, a stop reason and usage; rejects nonsense."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.parts: list[str] = []
        self.tool_parts: list[str] = []  # a forced tool call's input: the structured reply
        self.stop: str | None = None
        self.prompt_tokens = self.completion_tokens = 0

    def _fail(self, what: str) -> ProviderUnavailable:
        return ProviderUnavailable(f"{self.label} sent {what}", provider=self.label)

    def feed(self, event: Any) -> str:
        if not isinstance(event, anthropic.BaseModel):  # the SDK passes non-object JSON through as-is
            raise self._fail("an event that is not a JSON object")
        kind = getattr(event, "type", None)
        if kind == "message_start":
            usage = getattr(getattr(event, "message", None), "usage", None)
            self.prompt_tokens = getattr(usage, "input_tokens", 0) or 0
            self.completion_tokens = getattr(usage, "output_tokens", 0) or 0
        elif kind == "content_block_delta":
            delta = getattr(event, "delta", None)
            if getattr(delta, "type", None) == "input_json_delta":  # the forced tool's input
                if not isinstance(partial := getattr(delta, "partial_json", None), str):
                    raise self._fail("a tool input delta without JSON")
                self.tool_parts.append(partial)
            elif getattr(delta, "type", None) == "text_delta":
                text = getattr(delta, "text", None)
                if not isinstance(text, str):
                    raise self._fail("a text delta without text")
                if text:
                    self.parts.append(text)
                return text
        elif kind == "message_delta":
            self.stop = getattr(getattr(event, "delta", None), "stop_reason", None) or self.stop
            usage = getattr(event, "usage", None)
            self.completion_tokens = getattr(usage, "output_tokens", None) or self.completion_tokens
            self.prompt_tokens = getattr(usage, "input_tokens", None) or self.prompt_tokens
        if not isinstance(self.prompt_tokens, int) or not isinstance(self.completion_tokens, int):
            raise self._fail("a malformed usage block")
        return ""

    def last_chunk(self) -> ModelChunk:
        if self.stop is None:
            raise self._fail("a reply without a stop reason (empty, or a truncated stream)")
        return ModelChunk(usage=Usage(self.prompt_tokens, self.completion_tokens),
                          finish_reason=_FINISH.get(self.stop, self.stop))

    def json_text(self) -> str:
        """The buffered reply (the tool input if there was one) as JSON text, or
        ProviderUnavailable if it does not parse."""
        text = "".join(self.tool_parts or self.parts).strip()
        if text.startswith("```"):
            text = text.split("\n", 1)[-1].rsplit("```", 1)[0].strip()
        try:
            json.loads(text)
        except ValueError:
            raise self._fail("a reply that is not the JSON asked for") from None
        return text


class AnthropicModel(SDKChatModel):
    """Claude over the official SDK, streamed, with usage from the stream events."""

    provider = "anthropic"

    default_model = DEFAULT_MODEL
    settings_prefix = "anthropic"
    key_hint = KEY_HINT

    def __init__(self, model: str | None = None, *, context_window: int = 200_000, **kwargs: Any) -> None:
        super().__init__(model, context_window=context_window, **kwargs)

    def _timeout(self, read_s: float, connect_s: float) -> Any:
        return anthropic.Timeout(read_s, connect=connect_s)

    def _new_client(self, *, asynchronous: bool) -> Any:
        return (anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic)(**self._options)

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        system, messages = to_anthropic(request.messages)
        if request.response_schema is not None:
            instruction = JSON_INSTRUCTION.format(schema=json.dumps(request.response_schema))
            system = f"{system}\n\n{instruction}" if system else instruction
        params: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                  "max_tokens": request.max_tokens}
        if request.response_schema is not None and request.response_schema.get("type") == "object":
            params["tools"] = [{"name": REPLY_TOOL, "input_schema": request.response_schema,
                                "description": "Give the reply as this tool's input."}]
            params["tool_choice"] = {"type": "tool", "name": REPLY_TOOL}
        if system:
            params["system"] = system
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        return params

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        reply, buffered = _Reply(self.label), request.response_schema is not None
        try:
            with require_event_stream(self._client.messages.create(**self._params(request)),
                                      self.label) as stream:
                for event in stream:
                    if (text := reply.feed(event)) and not buffered:
                        yield ModelChunk(text=text)
            last = reply.last_chunk()
        except _CAUGHT as exc:
            raise translate(exc, self.label, "".join(reply.parts)) from exc
        if buffered:
            yield ModelChunk(text=reply.json_text())
        yield last

    async def arequest(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        client = self._async_client()
        reply, buffered = _Reply(self.label), request.response_schema is not None
        try:
            stream = await client.messages.create(**self._params(request))
            async with require_event_stream(stream, self.label):
                async for event in stream:
                    if (text := reply.feed(event)) and not buffered:
                        yield ModelChunk(text=text)
            last = reply.last_chunk()
        except _CAUGHT as exc:
            raise translate(exc, self.label, "".join(reply.parts)) from exc
        if buffered:
            yield ModelChunk(text=reply.json_text())
        yield last
