"""Wire formats for ``assistant.testing.faultserver``: OpenAI chat completions and Anthropic Messages.

Each format renders the same few things (a whole reply, a reply as SSE frames, an error
body, a reply with nothing in it) so the server's fault logic is written once. The
shapes follow the public API references closely enough that the official SDKs parse them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANTHROPIC", "NONSENSE_SHAPES", "OPENAI", "Frames", "WireFormat", "sse"]

#: Malformations ``Fault.nonsense`` can send: valid JSON, wrong shape.
NONSENSE_SHAPES = ("wrong_type", "missing_fields", "not_an_object")
#: Not text, where text belongs.
_NOT_TEXT = {"type": "image", "source": {"data": 12345}}


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


@dataclass
class Frames:
    """A streamed reply: frames before the text, one frame per text delta, frames after."""

    head: list[bytes] = field(default_factory=list)
    deltas: list[bytes] = field(default_factory=list)
    tail: list[bytes] = field(default_factory=list)


class WireFormat:
    """What a provider's HTTP API looks like; subclasses fill in the shapes."""

    name = ""
    path = ""
    overloaded_status = 503
    #: An SSE frame a client must choke on: the right shape, but the data is not JSON.
    garbage = b"data: {not json\n\n"

    def reply(self, body: dict[str, Any], pieces: list[str], usage: tuple[int, int]) -> dict[str, Any]:
        raise NotImplementedError

    def frames(self, body: dict[str, Any], pieces: list[str], usage: tuple[int, int]) -> Frames:
        raise NotImplementedError

    def error(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def error_frame(self, status: int, message: str) -> bytes:
        """An error reported inside a stream that already started with 200."""
        return sse(self.error(status, message))

    def empty_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def empty_frames(self, body: dict[str, Any]) -> Frames:
        raise NotImplementedError

    def nonsense_reply(self, body: dict[str, Any], shape: str) -> Any:
        """A whole reply of the given ``NONSENSE_SHAPES`` shape."""
        raise NotImplementedError

    def nonsense_frames(self, body: dict[str, Any], shape: str) -> Frames:
        """A stream of the given ``NONSENSE_SHAPES`` shape (it ends "normally")."""
        raise NotImplementedError


def _model(body: dict[str, Any]) -> str:
    return str(body.get("model") or "fault-model")


class OpenAIWire(WireFormat):
    """``POST /v1/chat/completions``; usage arrives in a last, choice-less chunk when asked."""

    name, path, overloaded_status = "openai", "/v1/chat/completions", 503

    def _chunk(self, body: dict[str, Any], choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 0,
                "model": _model(body), "choices": choices, **extra}

    def reply(self, body: dict[str, Any], pieces: list[str], usage: tuple[int, int]) -> dict[str, Any]:
        return {"id": "chatcmpl-fault", "object": "chat.completion", "created": 0,
                "model": _model(body),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "".join(pieces)}}],
                "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                          "total_tokens": sum(usage)}}

    def frames(self, body: dict[str, Any], pieces: list[str], usage: tuple[int, int]) -> Frames:
        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "finish_reason": finish}]

        out = Frames(head=[sse(self._chunk(body, choice({"role": "assistant", "content": ""})))],
                     deltas=[sse(self._chunk(body, choice({"content": p}))) for p in pieces],
                     tail=[sse(self._chunk(body, choice({}, "stop")))])
        if (body.get("stream_options") or {}).get("include_usage"):
            claimed = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                       "total_tokens": sum(usage)}
            out.tail.append(sse(self._chunk(body, [], usage=claimed)))
        out.tail.append(sse("[DONE]"))
        return out

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def empty_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": "chatcmpl-fault", "object": "chat.completion", "created": 0,
                "model": _model(body), "choices": []}

    def empty_frames(self, body: dict[str, Any]) -> Frames:
        return Frames(head=[sse(self._chunk(body, [])), sse(self._chunk(body, []))],
                      tail=[sse("[DONE]")])

    def nonsense_reply(self, body: dict[str, Any], shape: str) -> Any:
        if shape == "not_an_object":
            return ["chat.completion", "no", "object"]
        if shape == "missing_fields":
            return {"id": "chatcmpl-fault", "object": "chat.completion"}
        return {**self.reply(body, [], (1, 1)), "choices": [{
            "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": _NOT_TEXT}}]}

    def nonsense_frames(self, body: dict[str, Any], shape: str) -> Frames:
        if shape == "not_an_object":
            return Frames(head=[sse(["chat.completion.chunk"]), sse(json.dumps("no object here"))],
                          tail=[sse("[DONE]")])
        if shape == "missing_fields":
            bare = {"id": "chatcmpl-fault", "object": "chat.completion.chunk"}
            return Frames(head=[sse(bare), sse(bare)], tail=[sse("[DONE]")])
        return Frames(head=[sse(self._chunk(body, [{"index": 0, "delta": {"content": _NOT_TEXT},
                                                    "finish_reason": None}]))],
                      tail=[sse(self._chunk(body, [{"index": 0, "delta": {}, "finish_reason": "stop"}])),
                            sse("[DONE]")])


class AnthropicWire(WireFormat):
    """``POST /v1/messages``; usage in ``message_start`` (input) and ``message_delta`` (output)."""

    name, path, overloaded_status = "anthropic", "/v1/messages", 529
    garbage = b"event: content_block_delta\ndata: {not json\n\n"  # SDKs skip event-less frames

    def _message(self, body: dict[str, Any], content: list[Any], stop: str | None,
                 usage: tuple[int, int]) -> dict[str, Any]:
        return {"id": "msg_fault", "type": "message", "role": "assistant", "model": _model(body),
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}

    def reply(self, body: dict[str, Any], pieces: list[str], usage: tuple[int, int]) -> dict[str, Any]:
        return self._message(body, [{"type": "text", "text": "".join(pieces)}], "end_turn", usage)

    def frames(self, body: dict[str, Any], pieces: list[str], usage: tuple[int, int]) -> Frames:
        """Text deltas; or, when the request forces a tool (``tool_choice`` of type
        ``tool``), that tool's ``tool_use`` block with the text as its JSON input."""
        start = self._message(body, [], None, (usage[0], 1))
        forced = body.get("tool_choice") or {}
        tool = forced.get("name") if forced.get("type") == "tool" else None
        block = ({"type": "tool_use", "id": "toolu_fault", "name": tool, "input": {}} if tool
                 else {"type": "text", "text": ""})
        return Frames(
            head=[sse({"type": "message_start", "message": start}, "message_start"),
                  sse({"type": "content_block_start", "index": 0,
                       "content_block": block}, "content_block_start"),
                  sse({"type": "ping"}, "ping")],
            deltas=[sse({"type": "content_block_delta", "index": 0,
                         "delta": ({"type": "input_json_delta", "partial_json": p} if tool
                                   else {"type": "text_delta", "text": p})}, "content_block_delta")
                    for p in pieces],
            tail=[sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                  sse({"type": "message_delta",
                       "delta": {"stop_reason": "tool_use" if tool else "end_turn",
                                 "stop_sequence": None},
                       "usage": {"output_tokens": usage[1]}}, "message_delta"),
                  sse({"type": "message_stop"}, "message_stop")])

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kind.get(status, "api_error"), "message": message}}

    def error_frame(self, status: int, message: str) -> bytes:
        return sse(self.error(status, message), "error")

    def empty_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._message(body, [], None, (0, 0))

    def empty_frames(self, body: dict[str, Any]) -> Frames:
        start = self._message(body, [], None, (0, 0))
        return Frames(head=[sse({"type": "message_start", "message": start}, "message_start")],
                      tail=[sse({"type": "message_stop"}, "message_stop")])

    def nonsense_reply(self, body: dict[str, Any], shape: str) -> Any:
        if shape == "not_an_object":
            return ["message", "no", "object"]
        if shape == "missing_fields":
            return {"id": "msg_fault", "type": "message", "role": "assistant"}
        return self._message(body, [{"type": "text", "text": _NOT_TEXT}], "end_turn", (1, 1))

    def nonsense_frames(self, body: dict[str, Any], shape: str) -> Frames:
        stop = [sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                     "usage": {"output_tokens": 1}}, "message_delta"),
                sse({"type": "message_stop"}, "message_stop")]
        if shape == "not_an_object":
            return Frames(head=[sse(["message_start"], "message_start"),
                                sse(json.dumps("no object here"), "content_block_delta")], tail=stop)
        if shape == "missing_fields":
            return Frames(head=[sse({"type": "message_start"}, "message_start"),
                                sse({"type": "content_block_delta"}, "content_block_delta")],
                          tail=[sse({"type": "message_stop"}, "message_stop")])
        start = self._message(body, [], None, (1, 1))
        return Frames(head=[sse({"type": "message_start", "message": start}, "message_start"),
                            sse({"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": _NOT_TEXT}}, "content_block_delta")],
                      tail=stop)


OPENAI = OpenAIWire()
ANTHROPIC = AnthropicWire()
