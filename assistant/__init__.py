"""lastmile: the system around the model that makes production failures boring.

Why the exports resolve lazily (on first attribute access): the kernel — errors,
settings, audit, protocols, the turn, reply and record types, the model interface — lives
inside this package, and Python runs a package's ``__init__`` before any of its modules.
Every layer imports the kernel, so an eager ``from assistant.orchestrator import
Assistant`` here would load the whole assistant layer (models, guards, stores) into a
plain ``import memory`` — and, while ``memory`` is still half-imported, import it back.
There is no cycle left to dodge between the layers (``lint-imports`` checks that, see
pyproject.toml); this only keeps importing the kernel cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.errors import (
        ExtractionFailed,
        InputRejected,
        LastmileError,
        ProviderError,
        SessionNotFound,
    )
    from assistant.extract import extract
    from assistant.orchestrator import Assistant
    from assistant.providers import ChatModel, ModelChunk, ModelRequest, ScriptedModel, ScriptedReply, Usage
    from assistant.providers.langchain import LastmileChatModel
    from assistant.reply import AsyncReplyStream, Reply, ReplyStream
    from assistant.settings import Settings

__all__ = [
    "Assistant",
    "AsyncReplyStream",
    "ChatModel",
    "ExtractionFailed",
    "InputRejected",
    "LastmileChatModel",
    "LastmileError",
    "ModelChunk",
    "ModelRequest",
    "ProviderError",
    "Reply",
    "ReplyStream",
    "ScriptedModel",
    "ScriptedReply",
    "SessionNotFound",
    "Settings",
    "Usage",
    "extract",
]

_EXPORTS = {
    "Assistant": "assistant.orchestrator",
    "Settings": "assistant.settings",
    "Reply": "assistant.reply",
    "ReplyStream": "assistant.reply",
    "AsyncReplyStream": "assistant.reply",
    "ChatModel": "assistant.providers",
    "ModelChunk": "assistant.providers",
    "ModelRequest": "assistant.providers",
    "Usage": "assistant.providers",
    "ScriptedModel": "assistant.providers",
    "ScriptedReply": "assistant.providers",
    "LastmileError": "assistant.errors",
    "InputRejected": "assistant.errors",
    "ProviderError": "assistant.errors",
    "SessionNotFound": "assistant.errors",
    "ExtractionFailed": "assistant.errors",
    "extract": "assistant.extract",
    "LastmileChatModel": "assistant.providers.langchain",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
