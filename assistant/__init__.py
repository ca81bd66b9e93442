"""lastmile: the system around the model that makes production failures boring."""

from assistant.errors import InputRejected, LastmileError, ProviderError, SessionNotFound
from assistant.orchestrator import Assistant
from assistant.providers import ChatModel, ModelChunk, ModelRequest, ScriptedModel, ScriptedReply, Usage
from assistant.reply import AsyncReplyStream, Reply, ReplyStream
from assistant.settings import Settings

__all__ = [
    "Assistant",
    "Settings",
    "Reply",
    "ReplyStream",
    "AsyncReplyStream",
    "ChatModel",
    "ModelChunk",
    "ModelRequest",
    "Usage",
    "ScriptedModel",
    "ScriptedReply",
    "LastmileError",
    "InputRejected",
    "ProviderError",
    "SessionNotFound",
]
