"""HTTP-level guards in front of every route: cross-site requests and oversized bodies
(``/v1`` reads its own with ``read_capped``; the UI's go through ``BodyCap``).

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

import ipaddress
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BodyCap", "BodyTooLarge", "EventCheck", "HostGuard", "OriginGuard", "install_http_guards",
           "read_capped"]

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


#: largest body of a UI request other than an upload (Gradio's queue events carry a
#: message, or a table the page shows, back to the server: never megabytes).
UI_BODY_BYTES = 16 * 1024 * 1024
#: files one upload request may carry, each at most ``LASTMILE_INGEST_MAX_FILE_MB``.
UPLOAD_FILES = 10


def _refuse(status: int, message: str, code: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = json.dumps(error_body(message, code)).encode()
    return ({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]},
        {"type": "http.response.body", "body": body})


class BodyCap:
    """ASGI middleware: a UI request body (Gradio's queue, upload and other routes) over
    its limit gets a 413 before the route buffers it — Gradio itself takes any size, so
    one signed-in client could post gigabytes into memory or the shared upload cache.
    ``/v1`` is left to its own reader (``read_capped``, OpenAI-shaped errors). A body
    without a length is counted as it streams; past the limit the route sees the client
    leave and the client gets the 413."""

    def __init__(self, app: ASGIApp, *, limit: int = UI_BODY_BYTES, upload_limit: int) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/v1/") or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if path.rstrip("/").endswith("/upload") else self.limit
        message = (f"The request body is larger than {limit:,} bytes (uploads: at most "
                   f"{UPLOAD_FILES} files, each within LASTMILE_INGEST_MAX_FILE_MB).")
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            for event in _refuse(413, message, "request_too_large"):
                await send(event)
            return
        seen, over, started = 0, False, False

        async def counted() -> Any:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return event

        async def guarded(event: Any) -> None:
            nonlocal started
            if over:
                return  # the route's reply to a "disconnect" it did not see coming: ours instead
            started = True
            await send(event)

        await self.app(scope, counted, guarded)
        if over and not started:
            for event in _refuse(413, message, "request_too_large"):
                await send(event)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("a number out of range")
    return number


def _bad_event(body: bytes, known: Callable[[int], bool]) -> str | None:
    """Why a queue-join body would crash Gradio rather than get its own 4xx, or None."""
    try:
        event = json.loads(body, parse_float=_finite, parse_constant=_finite)
    except (ValueError, RecursionError):
        return "The request body is not valid JSON (or nests too deep, or has a number out of range)."
    if isinstance(event, dict) and "fn_index" in event and event["fn_index"] is not None:
        index = event["fn_index"]
        if not isinstance(index, int) or isinstance(index, bool) or not known(index):
            return f"Unknown event fn_index {str(index)[:20]!r}."
    return None


class EventCheck:
    """ASGI middleware: a Gradio ``/queue/join`` body that Gradio itself answers with a
    500 (an unknown ``fn_index``: KeyError; ``1e999``; JSON nested thousands deep:
    RecursionError) gets a 422 instead. The body is read here (``BodyCap`` bounds it)
    and handed on unchanged.

    It also binds each Gradio ``session_hash`` to the signed-in user who first used it
    (``viewer`` reads the gate's verdict): Gradio serves a session's event stream
    (``/queue/data?session_hash=``) and state to whoever names the hash, so a hash read
    from a proxy's access log gave another user's replies. The table is per process, like
    Gradio's queue, and forgets the oldest hashes past ``SESSIONS`` entries."""

    SESSIONS = 100_000

    def __init__(self, app: ASGIApp, *, known: Callable[[int], bool],
                 viewer: Callable[[Scope], str | None] = lambda scope: None) -> None:
        self.app, self.known, self.viewer = app, known, viewer
        self.owners: OrderedDict[str, str] = OrderedDict()

    def _foreign(self, scope: Scope, session_hash: Any) -> bool:
        """True when ``session_hash`` belongs to another user (else it is now theirs)."""
        user = self.viewer(scope)
        if user is None or not isinstance(session_hash, str) or not session_hash:
            return False
        owner = self.owners.setdefault(session_hash, user)
        self.owners.move_to_end(session_hash)
        while len(self.owners) > self.SESSIONS:
            self.owners.popitem(last=False)
        return owner != user

    async def _refuse_foreign(self, send: Send) -> None:
        for message in _refuse(403, "That Gradio session belongs to another sign-in; reload "
                               "the page.", "foreign_session"):
            await send(message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").rstrip("/")
        if scope["type"] == "http" and scope["method"] == "GET" and \
                (path.endswith("/queue/data") or "/heartbeat/" in path):
            named = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash")
            session_hash = named[0] if named else path.rsplit("/heartbeat/", 1)[-1] \
                if "/heartbeat/" in path else None
            if self._foreign(scope, session_hash):
                await self._refuse_foreign(send)
                return
        if scope["type"] != "http" or scope["method"] != "POST" or not path.endswith("/queue/join"):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            event = await receive()
            if event["type"] != "http.request":
                return  # the client left
            chunks.append(event.get("body", b""))
            more = event.get("more_body", False)
        body = b"".join(chunks)
        why = _bad_event(body, self.known)
        if why is not None:
            for message in _refuse(422, why, "invalid_event"):
                await send(message)
            return
        event = json.loads(body)
        if isinstance(event, dict) and self._foreign(scope, event.get("session_hash")):
            await self._refuse_foreign(send)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _local_name(host: str) -> bool:
    """An IP literal or ``localhost``: names no outsider's DNS can point at us."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class HostGuard:
    """ASGI middleware for the keyless single-user setup (``LASTMILE_AUTH=none``): only
    requests addressed to an IP literal, ``localhost`` or an allowed origin's host are
    served. Against DNS rebinding: a page at ``evil.example`` whose name is then pointed at
    127.0.0.1 is same-origin with us, so neither the Origin check nor ``/v1``'s JSON-only
    rule stops it — but its requests say ``Host: evil.example``."""

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {o[1].lower().rstrip(".") for o in map(_origin, allowed_origins)
                        if o is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = Headers(scope=scope).get("host") if scope["type"] in ("http", "websocket") else None
        parsed = _origin(f"http://{host}") if host else None
        name = parsed[1] if parsed else (host or "")
        if not host or _local_name(name) or name.lower().rstrip(".") in self.allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        for event in _refuse(403, f"Host {host[:100]!r} is not served: without sign-in "
                             "(LASTMILE_AUTH=none) only IP addresses and localhost are. Add "
                             "the origin to LASTMILE_ALLOWED_ORIGINS if it is yours.",
                             "host_not_allowed"):
            await send(event)


def install_http_guards(app: FastAPI, allowed_origins: str = "", *,
                        upload_file_bytes: int | None = None, keyless: bool = False) -> None:
    """Put the guards in front of every route of ``app`` (call before it serves);
    ``keyless`` (auth=none) adds the DNS-rebinding guard."""
    origins = [o.strip() for o in allowed_origins.split(",") if o.strip()]
    if upload_file_bytes is not None:
        app.add_middleware(BodyCap, upload_limit=UPLOAD_FILES * upload_file_bytes + 1024 * 1024)
    app.add_middleware(OriginGuard, allowed_origins=origins)
    if keyless:
        app.add_middleware(HostGuard, allowed_origins=origins)
