"""HTTP-level guards in front of every route: cross-site requests and oversized bodies.

A web page the user visits can make their browser POST to this server (the Gradio
queue, an upload, ``/login``, ``/v1``) with their cookies, or with no key at all in the
single-user ``make run`` setup. Browsers always say where such a request comes from
(``Origin``, else ``Referer``), so a state-changing request naming another origin is
refused; a request naming none is not a browser's cross-site request (the Gradio Python
client, httpx, the OpenAI SDKs) and passes. ``/v1`` additionally takes only
``application/json``, which a page cannot send cross-site without a CORS preflight we
never grant (see ``ui.openai_api``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BodyTooLarge", "OriginGuard", "install_http_guards", "read_capped"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: how much of an oversized body we still read (and drop) so the client sees our 413
#: instead of a reset connection; past this the connection is simply closed.
DRAIN_BYTES = 32 * 1024 * 1024


def error_body(message: str, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    """OpenAI's error shape (what ``/v1`` clients and their SDKs expect)."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _origin(url: str | None) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin or URL; ``None`` when it names none."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


class OriginGuard:
    """ASGI middleware: a state-changing request whose ``Origin`` (or, without one,
    ``Referer``) is neither this server's ``Host`` nor an allowed origin gets a 403.

    ``Origin: null`` (sandboxed frames, some redirects) and unparsable values count as
    foreign. Websockets and safe methods pass untouched.
    """

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {o for o in map(_origin, allowed_origins) if o is not None}

    def foreign(self, headers: Headers) -> str | None:
        """The foreign origin a request comes from, or ``None`` when it may pass."""
        claimed = headers.get("origin")
        if claimed is None:
            claimed = headers.get("referer")
            if claimed is None:
                return None  # not a browser's cross-site request
        source = _origin(claimed)
        if source is None:
            return claimed
        if source in self.allowed:
            return None
        host = _origin(f"{source[0]}://{headers.get('host', '')}")
        return None if host == source else claimed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        claimed = self.foreign(Headers(scope=scope))
        if claimed is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(error_body(
            f"Cross-site request refused: origin {claimed[:100]!r} is not this server. "
            "Add it to LASTMILE_ALLOWED_ORIGINS if it should be allowed.", "cross_origin")).encode()
        await send({"type": "http.response.start", "status": 403, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit:,} bytes "
                         "(LASTMILE_MAX_REQUEST_BYTES).")
        self.limit = limit


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` once it (declared or streamed) exceeds
    ``limit`` bytes; an oversized body is read to its end and dropped (up to
    ``DRAIN_BYTES``) so the client can read the 413."""
    declared = request.headers.get("content-length", "")
    too_big = declared.isdigit() and int(declared) > limit
    if too_big and int(declared) > DRAIN_BYTES:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_big = True
            if size > DRAIN_BYTES:
                break
        elif not too_big:
            chunks.append(chunk)
    if too_big:
        raise BodyTooLarge(limit)
    return b"".join(chunks)


def install_http_guards(app: FastAPI, allowed_origins: str = "") -> None:
    """Put the guards in front of every route of ``app`` (call before it serves)."""
    app.add_middleware(OriginGuard, allowed_origins=[
        o.strip() for o in allowed_origins.split(",") if o.strip()])
