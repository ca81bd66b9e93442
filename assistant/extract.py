"""Structured outputs: text (or a conversation) in, a validated pydantic object out.

Each provider constrains the reply as natively as it can (``ModelRequest.response_schema``:
a JSON grammar on the local model, ``response_format`` on OpenAI, a forced tool call on
Anthropic), but no constraint is trusted: the reply is validated against the schema,
repaired with json-repair when it is almost JSON, and re-asked once naming pydantic's
errors. What is still invalid raises ``ExtractionFailed`` - never a half-filled object.
Every call carries a ``purpose`` (``extract``, then ``extract-reask``) so the ledger
shows what structured output costs, re-asks included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import json_repair
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from assistant.errors import ExtractionFailed
from assistant.providers.base import ChatModel, ModelRequest

__all__ = ["DEFAULT_INSTRUCTIONS", "extract", "parse_reply", "schema_for"]

T = TypeVar("T", bound=BaseModel)

DEFAULT_INSTRUCTIONS = ("Extract the requested information from the text as one JSON object "
                        "matching the schema. Use only what the text states.")
MAX_LISTED_ERRORS = 8


def schema_for(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent to providers (pydantic's, as-is: ``$defs`` and all)."""
    return schema.model_json_schema()


def _untitled(node: Any) -> Any:
    """The schema without pydantic's ``title`` annotations: they repeat the field names
    and cost prompt tokens (the local model reads ~40% faster without them)."""
    if isinstance(node, dict):
        return {k: _untitled(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    return node


def _render(source: str | Sequence[BaseMessage]) -> str:
    """The text to extract from. A conversation becomes a transcript in one user
    message, so the model reads it instead of continuing it."""
    if isinstance(source, str):
        return source
    return "\n".join(f"{m.type}: {m.content}" for m in source)


def _describe(errors: list[dict[str, Any]]) -> str:
    """pydantic errors as short lines a model can act on."""
    lines = []
    for error in errors[:MAX_LISTED_ERRORS]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "(root)"
        lines.append(f"- {where}: {error.get('msg', 'invalid')}")
    if len(errors) > MAX_LISTED_ERRORS:
        lines.append(f"- ... and {len(errors) - MAX_LISTED_ERRORS} more")
    return "\n".join(lines)


def parse_reply(schema: type[T], raw: str) -> tuple[T | None, list[dict[str, Any]]]:
    """``(object, [])`` when ``raw`` validates (directly, or after json-repair), else
    ``(None, errors)``. Validation is all-or-nothing: no partial objects."""
    try:
        return schema.model_validate_json(raw), []
    except ValidationError as exc:
        first = [dict(e) for e in exc.errors(include_url=False)]  # plain dicts, not TypedDicts
    try:
        repaired = json_repair.loads(raw)
    except Exception:  # noqa: BLE001 - json-repair gives up in several ways; all mean "no"
        return None, first
    if repaired in ("", None) and raw.strip() not in ("\"\"", "null"):
        return None, [{"loc": (), "msg": "the reply contained no JSON", "type": "json_invalid"}]
    try:
        return schema.model_validate(repaired), []
    except ValidationError as exc:
        return None, [dict(e) for e in exc.errors(include_url=False)]


def _ask(model: ChatModel, messages: list[BaseMessage], json_schema: dict[str, Any],
         metadata: Mapping[str, Any], max_tokens: int, temperature: float) -> str:
    request = ModelRequest(messages, max_tokens=max_tokens, temperature=temperature,
                           response_schema=json_schema, metadata=metadata)
    return "".join(chunk.text for chunk in model.request(request))


def extract(model: ChatModel, schema: type[T], source: str | Sequence[BaseMessage], *,
            instructions: str | None = None, metadata: Mapping[str, Any] | None = None,
            max_reasks: int = 1, max_tokens: int = 512, temperature: float = 0.0) -> T:
    """Ask ``model`` for an instance of ``schema`` drawn from ``source``.

    ``metadata`` travels to the ledger (``user_id``, ``session_id`` ...); its ``purpose``
    (default ``extract``) names the first call, and re-asks are ``<purpose>-reask``.
    Raises ``ExtractionFailed`` (with ``errors`` and ``raw``) when nothing valid came
    back after ``max_reasks`` re-asks, ``SchemaNotSupported`` when the local grammar
    cannot express ``schema``, and provider errors as they are.
    """
    if max_reasks < 0:
        raise ValueError("max_reasks must be >= 0")
    json_schema = schema_for(schema)
    meta = dict(metadata or {})
    purpose = str(meta.pop("purpose", None) or "extract")
    system = (f"{instructions or DEFAULT_INSTRUCTIONS}\n"
              f"JSON schema: {json.dumps(_untitled(json_schema), separators=(',', ':'))}")
    messages: list[BaseMessage] = [SystemMessage(content=system),
                                   HumanMessage(content=_render(source))]
    raw, errors = "", list[dict[str, Any]]()
    for attempt in range(max_reasks + 1):
        call_meta = {**meta, "purpose": purpose if attempt == 0 else f"{purpose}-reask",
                     "attempt": attempt + 1}
        raw = _ask(model, messages, json_schema, call_meta, max_tokens, temperature)
        result, errors = parse_reply(schema, raw)
        if result is not None:
            return result
        messages += [AIMessage(content=raw), HumanMessage(content=(
            f"That reply does not match the schema:\n{_describe(errors)}\n"
            "Reply again with the corrected JSON object only."))]
    raise ExtractionFailed(
        f"{model.label} gave no valid {schema.__name__} after {max_reasks + 1} attempt(s):\n"
        f"{_describe(errors)}", errors=errors, raw=raw, attempts=max_reasks + 1)
