"""Plumbing shared by the SDK-backed remote providers (openai, anthropic).

Both need the same things around their SDK: refuse to start without a key, turn the
SDK's own retries off (retry lives in ``assistant.layers.resilience`` only), apply our connect
and read timeouts, and keep one async client per event loop (SDK async clients are
bound to the loop that first used them). Subclasses say which SDK classes to build.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

from assistant.errors import (
    ConfigurationError,
    ProviderError,
    ProviderUnavailable,
    StreamInterrupted,
)
from assistant.providers.base import ChatModel, error_for_status
from assistant.settings import Settings

__all__ = ["SDKChatModel", "require_event_stream", "translate_sdk_error", "transport_errors"]


def transport_errors() -> tuple[type[Exception], ...]:
    """Transport errors the SDKs let escape mid-stream (httpx2 now, httpx in older SDKs)."""
    errors: list[type[Exception]] = []
    for name in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            errors.append(__import__(name).HTTPError)
    return tuple(errors)


def require_event_stream(stream: Any, label: str) -> Any:
    """Return ``stream`` if it is one. A JSON or HTML body where an event stream belongs
    (a server that ignores ``stream: true``, a proxy's error page) is a provider failure,
    named as such; the SDKs would otherwise read it as an empty stream."""
    headers = getattr(getattr(stream, "response", None), "headers", None) or {}
    kind = str(headers.get("content-type", "")).split(";")[0].strip().lower()
    if kind in ("application/json", "text/html"):
        raise ProviderUnavailable(f"{label} answered a streaming request with {kind}, "
                                  "not an event stream", provider=label)
    return stream


def translate_sdk_error(exc: BaseException, label: str, partial: str, *,
                        status_error: type[Exception], connection_error: type[Exception]) -> ProviderError:
    """Map an SDK (or transport, or parse) failure to the error tree; the same rules for
    every SDK, given its HTTP-status and connection error classes."""
    if partial:
        return StreamInterrupted(f"stream broke after {len(partial)} chars: {exc}",
                                 provider=label, partial=partial)
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, status_error):
        status = exc.status_code  # type: ignore[attr-defined]  # the SDK's status error class
        message = f"HTTP {status} from {label}: {exc.message}"  # type: ignore[attr-defined]  # the SDK's status error class
        return error_for_status(status, message, label, exc.response.headers)  # type: ignore[attr-defined]  # the SDK's status error class
    if isinstance(exc, connection_error):  # timeouts included in both SDKs
        return ProviderUnavailable(f"cannot reach {label} (or it went silent): {exc}", provider=label)
    return ProviderUnavailable(f"unusable reply from {label}: {type(exc).__name__}: {exc}",
                               provider=label)


class SDKChatModel(ChatModel):
    """Base of every remote SDK provider. No subclass can send unredacted text: its
    ``request``/``arequest`` are wrapped at class creation (``assistant.layers.redaction``)."""

    #: ``LASTMILE_PII_MODE`` for this provider's egress (None: the environment's).
    pii_modes: str | Mapping[str, str] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from assistant.layers.redaction import enforce_egress

        enforce_egress(cls)

    #: Default model name when the spec gives none.
    default_model: ClassVar[str] = ""
    #: Prefix of the Settings fields ``<prefix>_api_key`` and ``<prefix>_base_url``.
    settings_prefix: ClassVar[str] = ""
    #: The one-line fix shown when the key is missing.
    key_hint: ClassVar[str] = ""

    def __init__(self, model: str | None = None, *, api_key: str | None, base_url: str | None = None,
                 connect_timeout_s: float = 5.0, read_timeout_s: float = 60.0,
                 context_window: int = 128_000) -> None:
        if not api_key:
            raise ConfigurationError(self.key_hint)
        self.model = model or self.default_model
        self.context_window = context_window
        self._options: dict[str, Any] = {
            "api_key": api_key, "base_url": base_url or None, "max_retries": 0,
            "timeout": self._timeout(read_timeout_s, connect_timeout_s)}
        self._client = self._new_client(asynchronous=False)
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary())

    @classmethod
    def from_settings(cls, settings: Settings, *, model: str | None = None) -> SDKChatModel:
        key = getattr(settings, f"{cls.settings_prefix}_api_key")
        built = cls(model, api_key=key.get_secret_value() if key else None,
                    base_url=getattr(settings, f"{cls.settings_prefix}_base_url"),
                    connect_timeout_s=settings.provider_connect_timeout_s,
                    read_timeout_s=settings.provider_read_timeout_s)
        built.pii_modes = settings.pii_mode
        return built

    def check(self) -> str | None:
        return None if self._options.get("api_key") else self.key_hint

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = self._new_client(asynchronous=True)
        return client

    def _timeout(self, read_s: float, connect_s: float) -> Any:
        raise NotImplementedError

    def _new_client(self, *, asynchronous: bool) -> Any:
        raise NotImplementedError
