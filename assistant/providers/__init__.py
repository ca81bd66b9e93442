"""Chat model providers behind one interface, and the factory that reads the chain.

Only each provider's own module imports its SDK (llama-cpp, openai, anthropic).
"""

from __future__ import annotations

from assistant.errors import UnknownProvider
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest, Usage
from assistant.providers.scripted import ScriptedModel, ScriptedReply
from assistant.settings import Settings

__all__ = [
    "ChatModel",
    "ModelChunk",
    "ModelRequest",
    "Usage",
    "ScriptedModel",
    "ScriptedReply",
    "build_model",
    "build_provider",
]


def build_provider(spec: str, settings: Settings) -> ChatModel:
    """Build one provider from a ``name[:model]`` spec."""
    name, _, model = spec.partition(":")
    name = name.strip().lower()
    if name == "local":
        from assistant.providers.local import LocalModel

        return LocalModel.from_settings(settings, model_path=model or None)
    if name == "scripted":
        return ScriptedModel(fn=lambda messages: f"(scripted) you said: {messages[-1].content}")
    if name == "openai":
        from assistant.providers.openai import OpenAIModel

        return OpenAIModel.from_settings(settings, model=model.strip() or "gpt-4o-mini")
    if name == "anthropic":
        from assistant.providers.anthropic import AnthropicModel

        return AnthropicModel.from_settings(settings, model=model.strip() or "claude-sonnet-4-5")
    raise UnknownProvider(
        f"provider {spec!r} is not available in this build; known: local, scripted, openai, anthropic",
        user_message="The assistant is misconfigured; run `lastmile doctor`.",
    )


def build_model(settings: Settings) -> ChatModel:
    """The model for the configured chain (the first provider, until fallback lands)."""
    return build_provider(settings.provider_specs[0], settings)
