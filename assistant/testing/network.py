"""Keep tests off the network (exported by ``assistant.testing``).

``loopback_only()`` makes any socket connection to a non-loopback address fail
loudly, so a test can't quietly depend on the internet (or leak data to it).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["NetworkBlocked", "loopback_only"]


class NetworkBlocked(RuntimeError):
    """A test tried to reach a non-loopback address."""


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like never leave the machine
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a hostname: resolving it could already leak


@contextmanager
def loopback_only() -> Iterator[None]:
    """Within the block, connections only to 127.0.0.0/8, ::1 and local sockets."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def guard(address: object) -> None:
        if not _is_loopback(address):
            raise NetworkBlocked(f"test tried to reach {address!r}; only loopback is allowed")

    def connect(self: socket.socket, address: object) -> None:
        guard(address)
        return original_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        guard(address)
        return original_connect_ex(self, address)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
