"""A loopback HTTP server that speaks the OpenAI and Anthropic APIs and misbehaves on cue.

Provider code is only trustworthy if it has met real failures through the real SDK:
timeouts, 429s with ``Retry-After``, 5xx, refused connections, garbage bodies and
streams that die halfway. Mocking the SDK tests our idea of the SDK; this server
tests the SDK itself. Stdlib only, so users can reuse it in their own tests::

    with FaultServer() as fs:
        fs.enqueue(Fault.rate_limited(retry_after=2), Fault.ok("hello there"))
        client = OpenAI(base_url=fs.url + "/v1", api_key="sk-test", max_retries=0)
        ...
        assert len(fs.requests) == 2 and fs.requests[-1].usage == (p, c)

Each request takes the next queued ``Fault``; with the queue empty it gets ``default``
(an echo of the last user message unless configured). ``stop()`` really closes the
listening socket (clients see "connection refused"); ``start()`` reopens the same port.
"""

from __future__ import annotations

import json
import re
import socket
import socketserver
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from assistant.testing.wire_formats import (
    ANTHROPIC,
    NONSENSE_SHAPES,
    OPENAI,
    Frames,
    WireFormat,
)

__all__ = ["NONSENSE_SHAPES", "Fault", "FaultServer", "RecordedRequest", "echo"]

_PIECES = re.compile(r"\S+\s*|\s+")
_WIRES = {wire.path: wire for wire in (OPENAI, ANTHROPIC)}


@dataclass(frozen=True)
class Fault:
    """One scripted behaviour. Build with the classmethods; they name the failure."""

    kind: str
    text: str = ""
    status: int = 200
    seconds: float = 0.0
    after_chunks: int = 0
    retry_after: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    content_type: str | None = None
    #: ``nonsense`` only: which malformation (see ``Fault.nonsense``).
    shape: str = ""
    #: ``None``: answer as the request asked; ``False``: a whole JSON body even to a
    #: streaming request (a server that ignores ``stream: true``); ``True``: SSE regardless.
    streamed: bool | None = None

    @classmethod
    def ok(cls, text: str = "ok", *, prompt_tokens: int | None = None,
           completion_tokens: int | None = None, streamed: bool | None = None) -> Fault:
        """A normal reply, one word per streamed delta; usage is claimed (and recorded)."""
        return cls("ok", text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   streamed=streamed)

    @classmethod
    def error(cls, status: int = 500, message: str = "internal server error") -> Fault:
        """An HTTP error with the provider's JSON error body (401, 400, 500 ...)."""
        return cls("error", message, status=status)

    @classmethod
    def rate_limited(cls, retry_after: float = 1) -> Fault:
        """429 with a ``Retry-After`` header."""
        return cls("error", "rate limit exceeded", status=429, retry_after=retry_after)

    @classmethod
    def overloaded(cls, *, after_chunks: int = 0, text: str = "one two three four five") -> Fault:
        """Anthropic's 529 ``overloaded_error`` / OpenAI's 503; with ``after_chunks``, an
        error event inside a stream after that many deltas."""
        return cls("overloaded", text, after_chunks=after_chunks)

    @classmethod
    def hang(cls, seconds: float, *, after_chunks: int = 0, text: str = "late reply") -> Fault:
        """Say nothing for ``seconds`` (after ``after_chunks`` deltas when streaming), then reply."""
        return cls("hang", text, seconds=seconds, after_chunks=after_chunks)

    @classmethod
    def refuse(cls) -> Fault:
        """Close the connection without a response (``stop()`` is for a server that is down)."""
        return cls("refuse")

    @classmethod
    def malformed(cls, content_type: str | None = None) -> Fault:
        """200 with a body that is not JSON (or SSE frames whose data is not JSON); with
        ``content_type`` (e.g. ``"text/html"``), a proxy's HTML page instead."""
        return cls("malformed", content_type=content_type)

    @classmethod
    def cut_stream(cls, text: str = "one two three four five", after_chunks: int = 2) -> Fault:
        """Send ``after_chunks`` deltas, then drop the connection mid-body."""
        return cls("cut", text, after_chunks=after_chunks)

    @classmethod
    def empty_choices(cls, *, streamed: bool | None = None) -> Fault:
        """A well-formed reply with nothing in it: no choices / no content and no stop reason."""
        return cls("empty", streamed=streamed)

    @classmethod
    def nonsense(cls, shape: str = "wrong_type", *, streamed: bool | None = None) -> Fault:
        """200 with valid JSON the API never sends. ``shape``: ``wrong_type`` (content that
        is not text), ``missing_fields`` (no choices / content / stop reason at all),
        ``not_an_object`` (a JSON array where an object belongs)."""
        if shape not in NONSENSE_SHAPES:
            raise ValueError(f"unknown nonsense shape {shape!r}; known: {', '.join(NONSENSE_SHAPES)}")
        return cls("nonsense", shape=shape, streamed=streamed)


@dataclass
class RecordedRequest:
    """What a client sent, and what the server did about it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    fault: Fault | None = None
    #: ``(prompt_tokens, completion_tokens)`` the server claimed, if it sent a reply.
    usage: tuple[int, int] | None = None


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def echo(request: RecordedRequest) -> Fault:
    """The default behaviour: reply ``echo: <last user message>``."""
    messages = request.body.get("messages") if isinstance(request.body, dict) else None
    users = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    return Fault.ok(f"echo: {_text_of(users[-1].get('content')) if users else ''}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked streams, so a cut stream is a protocol error
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests assert on ``requests``, not on stderr."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = b""
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            data += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return data

    def do_POST(self) -> None:  # stdlib naming (BaseHTTPRequestHandler)
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode(errors="replace")
        path = self.path.split("?", 1)[0]
        record = RecordedRequest("POST", path, {k.lower(): v for k, v in self.headers.items()}, body)
        fault = self.server.owner._take(record)
        wire = _WIRES.get(path)
        self.close_connection = True
        try:
            if wire is None:
                self._send(404, {"error": {"message": f"no route for {path}"}})
            else:
                self._serve(fault, wire, body if isinstance(body, dict) else {}, record)
        except OSError:
            pass  # the client went away (timed out, cancelled): that is its business

    def _serve(self, fault: Fault, wire: WireFormat, body: dict[str, Any], record: RecordedRequest) -> None:
        stream = bool(body.get("stream")) if fault.streamed is None else fault.streamed
        pieces = _PIECES.findall(fault.text)
        usage = (fault.prompt_tokens if fault.prompt_tokens is not None
                 else 1 + len(json.dumps([body.get("system"), body.get("messages")])) // 4,
                 fault.completion_tokens if fault.completion_tokens is not None else len(pieces))
        stopping = self.server.owner._stopping
        if fault.kind == "refuse":
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault.kind == "error":
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            self._send(fault.status, wire.error(fault.status, fault.text), extra)
        elif fault.kind == "overloaded" and stream and fault.after_chunks:
            self._stream(wire.frames(body, pieces, usage), cut_after=fault.after_chunks)
            self._chunk(wire.error_frame(wire.overloaded_status, "Overloaded"))
            self._chunk(b"")
        elif fault.kind == "overloaded":
            self._send(wire.overloaded_status, wire.error(wire.overloaded_status, "Overloaded"))
        elif fault.kind == "malformed":
            garbage = (b"<html><body>502 Bad Gateway</body></html>" if fault.content_type
                       else wire.garbage if stream else b'{"choices": [{"mess')
            self._send(200, garbage, content_type=fault.content_type
                       or ("text/event-stream" if stream else "application/json"))
        elif fault.kind == "empty":
            if stream:
                self._stream(wire.empty_frames(body))
            else:
                self._send(200, wire.empty_reply(body))
        elif fault.kind == "nonsense":
            if stream:
                self._stream(wire.nonsense_frames(body, fault.shape))
            else:
                self._send(200, wire.nonsense_reply(body, fault.shape))
        elif fault.kind == "cut":
            if stream:
                self._stream(wire.frames(body, pieces, usage), cut_after=fault.after_chunks)
            else:
                payload = json.dumps(wire.reply(body, pieces, usage)).encode()
                self._send(200, payload, length=len(payload) * 2)
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault.kind == "hang" and stream and fault.after_chunks:
            record.usage = usage
            self._stream(wire.frames(body, pieces, usage), cut_after=fault.after_chunks)
            if not stopping.wait(fault.seconds):
                frames = wire.frames(body, pieces, usage)
                for frame in frames.deltas[fault.after_chunks:] + frames.tail:
                    self._chunk(frame)
                self._chunk(b"")
        else:  # ok, or a hang that ends in a normal reply (if anyone is still listening)
            if fault.kind == "hang" and stopping.wait(fault.seconds):
                return
            record.usage = usage
            if stream:
                self._stream(wire.frames(body, pieces, usage))
            else:
                self._send(200, wire.reply(body, pieces, usage))

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
              *, content_type: str | None = None, length: int | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        self.send_header("Content-Length", str(length if length is not None else len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, frames: Frames, *, cut_after: int | None = None) -> None:
        """Send SSE frames as HTTP chunks; with ``cut_after``, stop after that many deltas."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        deltas = frames.deltas if cut_after is None else frames.deltas[:cut_after]
        for frame in frames.head + deltas + (frames.tail if cut_after is None else []):
            self._chunk(frame)
        if cut_after is None:
            self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FaultServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Skip HTTPServer's reverse-DNS lookup of the bind address (slow, and pointless here)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


@dataclass
class FaultServer:
    """The server. ``url`` is ``http://127.0.0.1:PORT``; OpenAI clients want ``url + "/v1"``."""

    host: str = "127.0.0.1"
    port: int = 0
    default: Fault | Callable[[RecordedRequest], Fault] = echo
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultServer:
        """Listen (again) on ``port``; the first start picks a free port."""
        if self._server is None:
            self._stopping = threading.Event()
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                            name=f"faultserver:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and release hanging handlers: the server is down."""
        server, self._server = self._server, None
        if server is not None:
            self._stopping.set()
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join(5)

    def enqueue(self, *faults: Fault) -> FaultServer:
        """Script the next requests, one fault each, in order."""
        with self._lock:
            self._queue.extend(faults)
        return self

    def reset(self) -> None:
        """Forget queued faults and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    def _take(self, record: RecordedRequest) -> Fault:
        with self._lock:
            self.requests.append(record)
            queued = self._queue.popleft() if self._queue else None
        fault = queued or (self.default(record) if callable(self.default) else self.default)
        record.fault = fault
        return fault

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
