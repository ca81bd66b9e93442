"""The wire models of the OpenAI-compatible ``/v1`` routes: the request we validate and
the responses we send, also what ``/openapi.json`` documents.

Every client mistake is caught here, in one place, before anything is stored, so SQLite
and PostgreSQL refuse it alike (PostgreSQL cannot store a NUL; SQLite would, silently):
each message's text (user, assistant, system, tool) is checked for NUL bytes and for
the per-message length limit, which the caller passes as validation context
(``{"max_chars": n}``), and ``metadata.session_id`` must be a usable id.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

__all__ = ["MAX_SESSION_ID", "MODEL_ID", "ChatCompletion", "ChatCompletionChunk",
           "ChatCompletionRequest", "ChatMessage", "ErrorResponse", "ModelList", "check_text",
           "inline_schema"]

MODEL_ID = "lastmile"
MAX_SESSION_ID = 128


def check_text(text: str) -> str:
    """Text every database stores alike: no NUL, no lone surrogate (not valid UTF-8)."""
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "text must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_text", "text must be valid Unicode") from None
    return text


class ContentPart(BaseModel):
    type: str
    text: str | None = None

    @field_validator("text")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""

    @field_validator("content")
    @classmethod
    def _within_limit(cls, value: Any, info: ValidationInfo) -> Any:
        """The per-message limit applies to every message, not just the new user turn:
        imported assistant turns are stored and sent to the model too."""
        if isinstance(value, str):
            check_text(value)
        limit = (info.context or {}).get("max_chars")
        size = len(value) if isinstance(value, str) else \
            sum(len(p.text or "") for p in value or () if p.type == "text")
        if limit is not None and size > limit:
            raise PydanticCustomError(
                "too_long", "message is too long ({size} characters; the limit is {limit})",
                {"size": f"{size:,}", "limit": f"{limit:,}"})
        return value


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields we honour; unknown OpenAI fields are accepted and ignored."""

    model: str = Field(MODEL_ID, json_schema_extra={"enum": [MODEL_ID]},
                       description="Always 'lastmile' (any other name: 404 model_not_found).")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    metadata: dict[str, str] | None = Field(None, json_schema_extra={"properties": {
        "session_id": {"type": "string", "maxLength": MAX_SESSION_ID, "description": (
            "The lastmile session (no control characters); without it the session is derived "
            "from the user and the first user message.")}}})
    user: str | None = None

    @field_validator("metadata")
    @classmethod
    def _session_id(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None or "session_id" not in value:
            return value
        key = value["session_id"].strip()
        if not key or len(key) > MAX_SESSION_ID or any(
                unicodedata.category(ch) in ("Cc", "Cs") for ch in key):
            raise PydanticCustomError(
                "session_id", "metadata.session_id must be 1 to {n} characters without control "
                              "characters", {"n": MAX_SESSION_ID})
        return {**value, "session_id": key}


# --- responses (documentation: the handlers build plain dicts) ------------------------

class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error shape; the official SDKs turn it into their typed exceptions."""

    error: ErrorDetail


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class Choice(BaseModel):
    index: int
    finish_reason: Literal["stop", "length"]
    message: AssistantMessage


class ChatCompletion(BaseModel):
    """A whole reply (``stream: false``); ``lastmile`` holds our own view of the turn
    (provider, session_id, citations, confidence, review status)."""

    model_config = ConfigDict(title="chat.completion")

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    lastmile: dict[str, Any]


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    """One SSE event of a streamed reply (``stream: true``): ``data: <chunk JSON>``; the
    stream ends with ``data: [DONE]``. An error mid-stream is one event in the error shape."""

    model_config = ConfigDict(title="chat.completion.chunk")

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    lastmile: dict[str, Any] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with every ``$ref`` resolved in place, for the spots of an
    OpenAPI document (``openapi_extra``) that cannot point into FastAPI's components."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
