"""An OpenAI-compatible endpoint over ``Assistant``: any OpenAI client gets lastmile's
memory, grounding, guards and fallback by changing its base URL.

``POST /v1/chat/completions`` (plain and SSE streaming) and ``GET /v1/models``. The
last message is the new user turn; lastmile keeps the conversation itself, so a
client's earlier messages are imported only when the session is new (a client that
talks to us from the start sends nothing we don't already have). The session is
``metadata.session_id`` when given, else derived from the user and the conversation's
first user message, so re-sending a growing ``messages`` list continues one session.
Errors follow OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``)
with the matching status, which the official SDKs turn into their typed exceptions.

Only ``application/json`` bodies are read (415 otherwise): a web page can POST
``text/plain`` cross-site without a CORS preflight, and in the keyless single-user
setup that would chat as the operator. Bodies over ``LASTMILE_MAX_REQUEST_BYTES`` get
a 413; a wrong method a 405 with ``Allow``. The wire models live in ``ui.openai_schema``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from assistant.errors import InputRejected, LastmileError, StorageError
from assistant.orchestrator import Assistant
from assistant.reply import Reply, Restart
from guardrails import GuardContext
from memory.accounts import Account, Accounts
from ui.http_guards import BodyTooLarge, read_capped
from ui.openai_schema import (
    MODEL_ID,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ErrorResponse,
    ModelList,
    inline_schema,
)

if TYPE_CHECKING:
    from memory.store import ConversationStore

__all__ = ["ChatCompletionRequest", "openai_router"]

log = logging.getLogger(__name__)
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _APIError(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.param = status, kind, code, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param,
                          "code": self.code}}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def _internal(stored: bool) -> _APIError:
    """The generic 500; it says the message is kept only when it was."""
    kept = "the message is kept. Try again." if stored else "nothing was stored. Try again."
    return _APIError(500, f"The server failed to answer; {kept}", kind="server_error",
                     code="internal_error")


def _session_key(user_id: str, body: ChatCompletionRequest) -> str:
    if body.metadata and body.metadata.get("session_id"):
        return body.metadata["session_id"]  # validated by the request model
    first = next((m.text() for m in body.messages if m.role == "user"), "")
    digest = hashlib.sha256(f"{user_id}\n{first}".encode()).hexdigest()[:24]
    return f"api-{digest}"


def _extra(reply: Reply) -> dict[str, Any]:
    """lastmile's own view of the turn, beside the OpenAI fields (clients ignore it)."""
    citations = [dataclasses.asdict(c) if dataclasses.is_dataclass(c) else c
                 for c in reply.citations]  # Citation dataclasses: JSON needs plain dicts
    return {"provider": reply.provider, "session_id": reply.session_id, "status": reply.status,
            "message_id": reply.message_id, "citations": citations, "notice": reply.notice,
            "confidence": reply.confidence, "review_status": reply.review_status}


def _usage(reply: Reply) -> dict[str, int]:
    prompt, completion = reply.usage.prompt_tokens, reply.usage.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _json_only(request: Request) -> None:
    """415 unless the body is declared JSON (optionally ``charset=utf-8``)."""
    kind, _, params = request.headers.get("content-type", "").partition(";")
    charset = params.strip().lower().replace(" ", "")
    if kind.strip().lower() != "application/json" or charset not in ("", "charset=utf-8"):
        raise _APIError(415, "Send the request body as JSON with 'Content-Type: "
                             "application/json'.", code="unsupported_media_type")


class _Endpoint:
    """Request handling, kept apart from routing so each step reads top to bottom."""

    def __init__(self, bot: Assistant, accounts: Accounts | None, require_key: bool,
                 default_user: str) -> None:
        self.bot, self.accounts = bot, accounts
        self.require_key, self.default_user = require_key, default_user

    def who(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else ""
        account: Account | None = None
        if key and self.accounts is not None:
            account = self.accounts.user_for_key(key)
        if account is not None:
            return account.user_id
        if self.require_key:
            raise _APIError(401, "Incorrect or missing API key. Create one with "
                                 "`lastmile users key USER`.", code="invalid_api_key")
        return self.default_user

    def parse(self, raw: bytes) -> ChatCompletionRequest:
        try:
            body = ChatCompletionRequest.model_validate_json(
                raw, context={"max_chars": self.bot.settings.max_message_chars})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or None
            raise _APIError(400, f"Invalid request: {first['msg']}" + (f" at '{where}'" if where else ""),
                            param=where) from None
        if body.model != MODEL_ID:
            raise _APIError(404, f"The model '{body.model}' does not exist; use '{MODEL_ID}'.",
                            code="model_not_found", param="model")
        if body.messages[-1].role != "user" or not body.messages[-1].text().strip():
            raise _APIError(400, "The last message must be a non-empty user message.",
                            param="messages")
        return body

    def start(self, user_id: str, body: ChatCompletionRequest) -> Any:
        key = _session_key(user_id, body)
        imported = self._import_earlier(user_id, key, body.messages[:-1])
        try:
            return self.bot.stream(body.messages[-1].text(), session_id=key, user_id=user_id)
        except BaseException as exc:
            if imported:  # the turn was refused: leave no half-imported conversation behind
                cast("ConversationStore", self.bot.store).delete_session(user_id, key)  # the app's store
            if isinstance(exc, InputRejected):
                raise _APIError(400, exc.user_message, code="input_rejected",
                                param="messages") from exc
            raise

    def _import_earlier(self, user_id: str, key: str, earlier: list[ChatMessage]) -> bool:
        """A conversation that began elsewhere: keep its turns so context and memory see
        them. User turns pass the input guards as a chat turn would (bound where the
        chain's first model is: redacted for a remote one); all are checked before any
        is stored, so a refusal stores nothing."""
        turns = [m for m in earlier if m.role in ("user", "assistant") and m.text().strip()]
        if not turns or self.bot.store.recent(user_id, key, 1):
            return False
        # The same destination the turn itself uses (orchestrator has no public twin).
        ctx = GuardContext(user_id=user_id, session_id=key,
                           destination=self.bot._destination(), imported=True)
        clean: list[tuple[str, str]] = []
        for message in turns:
            text = message.text()
            if message.role == "user":
                try:
                    text = self.bot.guards.before_input(ctx, text)
                except InputRejected as exc:
                    raise _APIError(400, exc.user_message, code="input_rejected",
                                    param="messages") from exc
            clean.append((message.role, text))
        for role, text in clean:
            self.bot.store.add_message(user_id, key, role, text)
        return True

    def complete(self, stream: Any, body: ChatCompletionRequest) -> JSONResponse:
        for _ in stream:
            pass
        reply: Reply = stream.reply
        if reply.status == "error":
            raise _APIError(503, reply.error or "No model could answer.", kind="server_error",
                            code="provider_unavailable")
        finish = "length" if reply.truncated else "stop"
        return JSONResponse({
            "id": f"chatcmpl-{reply.message_id}", "object": "chat.completion",
            "created": int(time.time()), "model": MODEL_ID,
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": reply.text}}],
            "usage": _usage(reply), "lastmile": _extra(reply)})

    def sse(self, stream: Any, body: ChatCompletionRequest) -> Iterator[str]:
        created, cid = int(time.time()), f"chatcmpl-{time.time_ns()}"

        def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created,
                     "model": MODEL_ID, "choices": [{"index": 0, "delta": delta,
                                                     "finish_reason": finish}], **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        yield event({"role": "assistant", "content": ""})
        try:
            for piece in stream:
                if isinstance(piece, Restart):  # the text so far is void; say so out of band
                    yield event({}, lastmile={"restart": True, "provider": piece.provider})
                elif piece:
                    yield event({"content": piece})
        except LastmileError as exc:
            yield f"data: {json.dumps(_APIError(500, exc.user_message, kind='server_error').body())}\n\n"
            return
        except Exception:  # a bug, not a user error: end the stream the way clients expect
            log.exception("chat completion stream failed")
            yield f"data: {json.dumps(_internal(stored=True).body())}\n\n"
            return
        reply: Reply = stream.reply
        if reply.status == "error":
            error = _APIError(503, reply.error or "No model could answer.", kind="server_error",
                              code="provider_unavailable")
            yield f"data: {json.dumps(error.body())}\n\n"
            return
        yield event({}, "length" if reply.truncated else "stop", lastmile=_extra(reply))
        if body.stream_options and body.stream_options.include_usage:
            tail = {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": MODEL_ID, "choices": [], "usage": _usage(reply)}
            yield f"data: {json.dumps(tail)}\n\n"
        yield "data: [DONE]\n\n"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": _ERROR_TEXT[status]}
            for status in statuses}


_ERROR_TEXT = {400: "Invalid request (OpenAI error shape).", 401: "Missing or wrong API key.",
               404: "Unknown model.", 413: "Body over LASTMILE_MAX_REQUEST_BYTES.",
               415: "Body not sent as application/json.", 500: "Unexpected server failure.",
               503: "No model could answer."}

_CHAT_DOCS: dict[str, Any] = {
    "summary": "Create a chat completion (OpenAI-compatible)",
    "openapi_extra": {"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline_schema(ChatCompletionRequest)}}}},
    "responses": {200: {"model": ChatCompletion, "description": (
        "`stream: false`: one chat.completion. `stream: true`: Server-Sent Events, each "
        "`data: <chat.completion.chunk>`, ending with `data: [DONE]`."),
        "content": {"text/event-stream": {"schema": inline_schema(ChatCompletionChunk)}}},
        **_errors(400, 401, 404, 413, 415, 500, 503)},
}


def openai_router(bot: Assistant, accounts: Accounts | None = None, *, require_key: bool = False,
                  default_user: str = "default") -> APIRouter:
    """The ``/v1`` routes. With ``require_key`` every call needs a live API key; without,
    a call with no (or an unknown) key chats as ``default_user`` — the single-user setup
    ``make run`` starts with."""
    endpoint = _Endpoint(bot, accounts, require_key, default_user)
    limit = bot.settings.max_request_bytes
    # Documents the bearer key in /openapi.json; checking it is ``endpoint.who``'s job.
    bearer = [Depends(HTTPBearer(auto_error=False, description="A lastmile API key."))]
    router = APIRouter(prefix="/v1")

    def run(request: Request, raw: bytes, stored: list[bool]) -> Any:
        user_id = endpoint.who(request)
        body = endpoint.parse(raw)
        stream = endpoint.start(user_id, body)
        stored.append(True)  # the user's message is in the store from here on
        if body.stream:
            return StreamingResponse(endpoint.sse(stream, body), media_type="text/event-stream")
        return endpoint.complete(stream, body)

    @router.post("/chat/completions", response_model=None, dependencies=bearer, **_CHAT_DOCS)
    async def chat_completions(request: Request) -> Any:
        # The raw body, so a malformed one gets our OpenAI-shaped 400, not FastAPI's 422;
        # the turn itself blocks (SQL, llama.cpp), so it runs in the thread pool.
        stored: list[bool] = []
        try:
            _json_only(request)
            try:
                raw = await read_capped(request, limit)
            except BodyTooLarge as exc:
                raise _APIError(413, str(exc), code="request_too_large") from None
            return await run_in_threadpool(run, request, raw, stored)
        except _APIError as exc:
            return exc.response()
        except (StorageError, DBAPIError):  # the database is unreachable: refuse, say what was kept
            log.warning("chat completion refused: database unavailable", exc_info=True)
            kept = "the message is kept" if stored else "nothing was stored"
            return _APIError(503, f"The database is unreachable right now; {kept}. Try again "
                                  "shortly.", kind="server_error", code="database_unavailable").response()
        except Exception:  # the turn is stored as failed; the client gets OpenAI's shape
            log.exception("chat completion failed")
            return _internal(bool(stored)).response()

    @router.get("/models", response_model=ModelList, dependencies=bearer,
                summary="List the models (just 'lastmile')", responses=_errors(401))
    def models(request: Request) -> Any:
        try:
            endpoint.who(request)
        except _APIError as exc:
            return exc.response()
        return {"object": "list", "data": [
            {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "lastmile"}]}

    def not_allowed(allow: str) -> Any:
        def handler(request: Request) -> JSONResponse:
            return _APIError(405, f"{request.method} is not allowed on {request.url.path}; "
                                  f"use {allow}.", code="method_not_allowed").response(
                headers={"Allow": allow})
        return handler

    # Without these, a wrong method falls through to the Gradio mount and gets its 404.
    for path, allow in (("/chat/completions", "POST"), ("/models", "GET")):
        router.add_api_route(path, not_allowed(allow), include_in_schema=False,
                             methods=[m for m in _METHODS if m != allow])

    @router.api_route("/{rest:path}", methods=list(_METHODS), include_in_schema=False)
    def unknown(rest: str) -> JSONResponse:
        return _APIError(404, f"Unknown endpoint '/v1/{rest[:100]}'.",
                         code="unknown_url").response()

    return router
