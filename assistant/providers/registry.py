"""The provider registry: one entry per provider, read by everything that names one.

Adding a provider is one new file (a ``ChatModel`` subclass, see ``providers/base.py``)
plus one ``ProviderEntry`` line in ``PROVIDERS`` below (or ``register(...)`` at run time,
as the test suite does). From that entry ``build_provider`` imports and builds the class,
``REMOTE`` decides whether its requests pass the egress redaction layer (and get retry,
the kill switch and a circuit breaker), ``Settings`` accepts its name and finds its key,
the ledger prices it, and ``lastmile doctor`` checks it.

Kernel-level (the settings validate names with it, ``memory.ledger`` prices from it), so
it imports nothing of ours: each class is named by its import path and loaded lazily,
which also keeps an SDK out of the process until its provider is used.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROVIDERS", "REMOTE", "ProviderEntry", "default_prices", "entry", "is_free", "names",
           "provider_class", "register", "unregister"]


@dataclass(frozen=True)
class ProviderEntry:
    """What the rest of the code needs to know about a provider, in one place."""

    #: The name in ``LASTMILE_PROVIDERS`` (``name[:model]``) and the model's ``provider``.
    name: str
    #: ``"package.module:Class"``; the class has ``from_spec(settings, model)``.
    target: str
    #: Sends text off this machine: egress redaction, retry, kill switch and breaker apply.
    remote: bool = False
    #: The ``Settings`` field holding its API key and the environment variable that sets it
    #: (a provider without a ``Settings`` field is read from the environment directly).
    key_setting: str | None = None
    key_env: str | None = None
    #: The ``Settings`` field of its endpoint override, shown by ``doctor``.
    base_url_setting: str | None = None
    #: USD per 1M (input, output) tokens per ``provider:model`` glob; overridden by
    #: ``LASTMILE_PRICES``. A provider that is not remote costs nothing.
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)


PROVIDERS: dict[str, ProviderEntry] = {e.name: e for e in (
    ProviderEntry("local", "assistant.providers.local:LocalModel"),
    ProviderEntry("scripted", "assistant.providers.scripted:ScriptedModel"),
    ProviderEntry("openai", "assistant.providers.openai:OpenAIModel", remote=True,
                  key_setting="openai_api_key", key_env="OPENAI_API_KEY",
                  base_url_setting="openai_base_url", prices={"openai:gpt-4o-mini*": (0.15, 0.60)}),
    ProviderEntry("anthropic", "assistant.providers.anthropic:AnthropicModel", remote=True,
                  key_setting="anthropic_api_key", key_env="ANTHROPIC_API_KEY",
                  base_url_setting="anthropic_base_url",
                  prices={"anthropic:claude-sonnet-4-5*": (3.00, 15.00)}),
)}
_lock = threading.Lock()


def register(new: ProviderEntry) -> ProviderEntry:
    """Add (or replace) a provider at run time: a plugin, or a test provider."""
    with _lock:
        PROVIDERS[new.name.lower()] = new
    return new


def unregister(name: str) -> None:
    with _lock:
        PROVIDERS.pop(name.lower(), None)


def names() -> list[str]:
    """Every provider name, in registration order."""
    return list(PROVIDERS)


def entry(name: str) -> ProviderEntry | None:
    """The entry for a provider name (or ``name:model`` spec), ``None`` if unknown."""
    return PROVIDERS.get(name.partition(":")[0].strip().lower())


def provider_class(found: ProviderEntry) -> Any:
    """Import the entry's class (only now: its SDK loads with it)."""
    module, _, attr = found.target.partition(":")
    return getattr(importlib.import_module(module), attr)


def is_free(name: str) -> bool:
    """A registered provider that runs here (or nowhere) costs nothing."""
    found = entry(name)
    return found is not None and not found.remote


def default_prices() -> dict[str, tuple[float, float]]:
    """The built-in price table: every entry's prices, in registration order."""
    return {key: tuple(value) for e in list(PROVIDERS.values())  # type: ignore[misc]  # tuple(value) is a (in, out) pair
            for key, value in e.prices.items()}


class _Remote:
    """The remote provider names, read live from the registry (``name in REMOTE``), so a
    provider registered after import is remote everywhere at once."""

    def __contains__(self, name: object) -> bool:
        found = entry(name) if isinstance(name, str) else None
        return found is not None and found.remote

    def __iter__(self) -> Iterator[str]:
        return iter([e.name for e in list(PROVIDERS.values()) if e.remote])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __repr__(self) -> str:
        return f"REMOTE{tuple(self)!r}"


#: Provider families that send text off this machine.
REMOTE = _Remote()
