"""The loopback echo backend of ``lastmile bench overhead``, as a process of its own.

Why a process: the backend must not share a GIL with the load generator or with the
server under test, or its own ~1 ms would grow with their load and blur the overhead.
It is ``assistant.testing.FaultServer`` (OpenAI wire format, echoes the last user
message, plain or streamed; ``{}`` for a JSON request) with request recording switched
off, so a long run holds no growing list. Prints ``port N`` once listening; stops on SIGTERM / SIGINT.

    python -m assistant.bench.overhead_echo [--port 0]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from assistant.testing.faultserver import Fault, FaultServer, RecordedRequest, echo

__all__ = ["EchoServer", "echo_or_json", "main"]


class _Forgetful(list[RecordedRequest]):
    """A request log that keeps nothing (``FaultServer`` appends every request)."""

    def append(self, _item: Any) -> None:
        return None


def echo_or_json(request: RecordedRequest) -> Fault:
    """The echo, except that a request for JSON (``response_format``: lastmile's facts
    extraction) gets ``{}``, as a real model would answer: an echo there fails to parse and
    is retried, which would bill lastmile for a backend no model behaves like."""
    if isinstance(request.body, dict) and request.body.get("response_format"):
        return Fault.ok("{}")
    return echo(request)


class EchoServer(FaultServer):
    """``FaultServer`` answering every request with ``echo_or_json``, recording none."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.requests = _Forgetful()
        self.default = echo_or_json

    def start(self) -> EchoServer:
        """Listen with room for a burst: the stdlib's backlog of 5 reset connections at c=50."""
        super().start()
        if self._server is not None:
            self._server.socket.listen(512)
        return self


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.bench.overhead_echo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    server = EchoServer(port=args.port).start()
    print(f"port {server.port}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
