"""Chat model providers behind one interface, and the factory that reads the chain.

Only each provider's own module imports its SDK (llama-cpp, openai, anthropic). Which
providers exist, and what each needs, is the registry's (``providers/registry.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.errors import UnknownProvider
from assistant.providers import registry
from assistant.providers.base import REMOTE, ChatModel, ModelChunk, ModelRequest, Usage
from assistant.providers.scripted import ScriptedModel, ScriptedReply
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.layers.killswitch import ControlFlags
    from memory.budget import Budget
    from memory.ledger import Ledger

__all__ = [
    "REMOTE",
    "ChatModel",
    "ModelChunk",
    "ModelRequest",
    "ScriptedModel",
    "ScriptedReply",
    "Usage",
    "build_model",
    "build_provider",
]


def build_provider(spec: str, settings: Settings) -> ChatModel:
    """Build one provider from a ``name[:model]`` spec, as its registry entry says
    (``assistant.providers.registry``). A remote one comes wrapped in the egress
    redaction layer (``assistant.layers.redaction.RedactingModel``): whatever wraps it
    later (ledger, retry, breaker) sits outside, so every attempt leaves redacted."""
    name, _, model = spec.partition(":")
    found = registry.entry(name)
    if found is None:
        raise UnknownProvider(
            f"provider {spec!r} is not available in this build; known: {', '.join(registry.names())}",
            user_message="The assistant is misconfigured; run `lastmile doctor`.",
        )
    built: ChatModel = registry.provider_class(found).from_spec(settings, model)
    if built.provider in REMOTE:
        from assistant.layers.redaction import RedactingModel

        return RedactingModel(built, settings.pii_mode)
    return built


def _resilient(model: ChatModel, settings: Settings, ledger: Ledger | None = None,
               budget: Budget | None = None, flags: ControlFlags | None = None) -> ChatModel:
    """Remote providers get retry (inside), the kill switch, and a circuit breaker (outside).
    ``model`` is what ``build_provider`` made: for a remote one, already the egress
    redaction layer around the provider, so it stays innermost.

    The local model is not wrapped: retrying an in-process call that failed gains
    nothing, and there is nothing to stop calling when it is down. With a ledger, the
    provider itself is wrapped in ``LedgerModel`` innermost, so every attempt is a row
    (and a budget check) of its own.
    """
    from assistant.errors import (
        AuthenticationFailed,
        BadProviderRequest,
        RemoteCallsDisabled,
    )
    from assistant.layers.ledger import LedgerModel
    from assistant.layers.resilience import (
        BreakerModel,
        CircuitBreaker,
        RetryingModel,
        RetryPolicy,
    )

    if ledger is not None:
        model = LedgerModel(model, ledger, budget)
    if model.provider not in REMOTE:
        return model
    policy = RetryPolicy(attempts=settings.retry_attempts,
                         initial_wait_s=settings.retry_initial_wait_s,
                         max_wait_s=settings.retry_max_wait_s)
    # Auth failures don't trip the breaker: an open circuit would hide them behind
    # silent fallback, and a wrong key must be seen and fixed. Nor does the kill switch:
    # a refusal by our operator says nothing about the provider's health.
    breaker = CircuitBreaker(model.label, failure_threshold=settings.breaker_failure_threshold,
                             reset_timeout_s=settings.breaker_reset_timeout_s,
                             ignore=(BadProviderRequest, AuthenticationFailed, RemoteCallsDisabled))
    inner: ChatModel = RetryingModel(model, policy)
    if flags is not None:
        from assistant.layers.killswitch import KillSwitchModel

        inner = KillSwitchModel(inner, flags)  # outside retry: a refusal is never retried
    return BreakerModel(inner, breaker)


def build_model(settings: Settings, ledger: Ledger | None = None,
                budget: Budget | None = None) -> ChatModel:
    """The configured chain: each provider made resilient, then a fallback across them,
    then the optional layers (routing, reply cache, kill switch / safe mode; see
    ``assistant.layers.compose``).

    Every spec is built up front, so an unknown name or a missing key fails at start
    with one line naming it, not at the first outage.
    """
    from assistant.layers import extractive
    from assistant.layers.compose import add_layers
    from assistant.layers.killswitch import ControlFlags

    engine = ledger.engine if ledger is not None else None
    flags = ControlFlags.from_settings(settings, engine)
    built: dict[str, ChatModel] = {}  # one provider per spec, even if both tiers name it

    def chain(specs: list[str]) -> ChatModel:
        from assistant.errors import FALLBACK_KINDS
        from assistant.layers.fallback import FallbackModel

        for spec in specs:  # a provider named in both tiers is one member: one breaker
            if spec not in built:
                built[spec] = extractive.wrap(_resilient(build_provider(spec, settings), settings, ledger,
                                                         budget, flags), settings.extractive_answers)
        members = [built[spec] for spec in specs]
        if len(members) == 1:
            return members[0]
        kinds = [k.strip() for k in settings.fallback_on.split(",") if k.strip()]
        return FallbackModel(members, fallback_on=tuple(FALLBACK_KINDS[k] for k in kinds))

    strong = chain(settings.provider_specs)
    cheap = chain(settings.route_specs) if settings.route_cheap else None
    return add_layers(strong, settings, engine=engine, cheap=cheap, flags=flags)
