"""Test doubles shipped with the package, for lastmile's tests and for yours.

``loopback_only()`` (``network``) makes any connection to a non-loopback address fail
loudly; ``FaultServer`` (``faultserver``, wire shapes in ``wire_formats``) speaks the
OpenAI and Anthropic APIs on loopback and misbehaves on cue. Stdlib only.
"""

from __future__ import annotations

from assistant.testing.faultserver import NONSENSE_SHAPES, Fault, FaultServer, RecordedRequest, echo
from assistant.testing.network import NetworkBlocked, loopback_only

__all__ = ["NONSENSE_SHAPES", "Fault", "FaultServer", "NetworkBlocked", "RecordedRequest", "echo",
           "loopback_only"]
