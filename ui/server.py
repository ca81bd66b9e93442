"""One process, one port: the Gradio UI mounted on a FastAPI app that also serves the
OpenAI-compatible ``/v1`` routes, so the UI and API clients share one ``Assistant``
(one database, one model load, one memory).

Sign-in is ours, not Gradio's: ``ui.gate.AuthGate`` admits every UI request (or refuses
it) before Gradio runs, and hands Gradio the user through ``auth_dependency``; with
``LASTMILE_AUTH=password`` the ``/login`` page (``ui.login``) starts a server-side session.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from assistant.errors import ConfigurationError
from assistant.settings import Settings, quiet_third_parties

quiet_third_parties()

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from assistant.orchestrator import Assistant  # noqa: E402
from memory.accounts import Accounts  # noqa: E402
from memory.signin import SignInSessions  # noqa: E402
from ui.app import build_app, launch_options  # noqa: E402
from ui.gate import AuthGate, ProxyTrust, Resolver, signed_in_user, viewer_id  # noqa: E402
from ui.health import health_router  # noqa: E402
from ui.http_guards import EventCheck, install_http_guards  # noqa: E402
from ui.login import login_router  # noqa: E402
from ui.metrics import metrics_router  # noqa: E402
from ui.openai_api import openai_router  # noqa: E402
from ui.settings_api import settings_router  # noqa: E402

__all__ = ["create_server", "serve", "uvicorn_options"]


def _accounts(bot: Assistant) -> Accounts | None:
    engine = getattr(bot.store, "engine", None)
    return Accounts(engine) if engine is not None else None


def _check_auth(settings: Settings, accounts: Accounts | None) -> None:
    """Refuse to start a deployment whose sign-in could be spoofed or is not possible."""
    if settings.auth == "header" and not ProxyTrust(settings).configured:
        raise ConfigurationError(
            "LASTMILE_AUTH=header needs LASTMILE_AUTH_TRUSTED_PROXIES (the proxy's addresses) "
            "or LASTMILE_AUTH_PROXY_SECRET; without either anyone could name themselves in "
            f"{settings.auth_header}")
    if settings.auth != "none" and accounts is None:
        raise ConfigurationError(f"LASTMILE_AUTH={settings.auth} needs the SQL store for accounts")


def create_server(bot: Assistant, *, notice: str | None = None) -> FastAPI:
    """The FastAPI app: ``/v1/*`` for OpenAI clients, ``/login``, the chat UI at ``/``."""
    settings = bot.settings
    accounts = _accounts(bot)
    _check_auth(settings, accounts)
    sessions = None
    app = FastAPI(title="lastmile", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.include_router(health_router(bot))  # /healthz, /readyz: open, status only
    app.include_router(metrics_router(bot))  # /metrics: open, no text and no user ids
    app.include_router(openai_router(bot, accounts, require_key=settings.auth != "none",
                                     default_user=settings.default_user))
    if settings.auth == "password" and accounts is not None:
        sessions = SignInSessions(accounts.engine, timedelta(hours=settings.session_ttl_hours))
        app.include_router(login_router(settings, accounts, sessions))
    app.include_router(settings_router(bot))  # /admin/settings: admins only (403 otherwise)
    blocks = build_app(bot, user_id=settings.default_user, notice=notice)
    app.add_middleware(EventCheck, known=lambda index: index in blocks.fns, viewer=viewer_id)
    app.add_middleware(AuthGate, resolver=Resolver(settings, accounts, sessions),
                       mode=settings.auth)
    file_bytes = int(settings.ingest_max_file_mb * 1_000_000)
    install_http_guards(app, settings.allowed_origins,  # outermost: cross-site refusals
                        upload_file_bytes=file_bytes, keyless=settings.auth == "none")
    blocks.queue(default_concurrency_limit=4)
    sign_in: dict[str, Any] = {"auth_dependency": signed_in_user} if settings.auth != "none" else {}
    return gr.mount_gradio_app(app, blocks, path="", show_error=True, enable_monitoring=False,
                               max_file_size=file_bytes, **sign_in, **launch_options())


def uvicorn_options() -> dict[str, Any]:
    """uvicorn must not rewrite the client address from ``X-Forwarded-For`` itself: the
    gate checks the real TCP peer against ``LASTMILE_AUTH_TRUSTED_PROXIES``."""
    return {"proxy_headers": False, "log_level": "warning"}


def serve(bot: Assistant, *, host: str, port: int, notice: str | None = None,
          grace_s: float | None = None) -> None:
    """Run the server in the foreground until SIGTERM / Ctrl-C; then stop accepting and
    let open requests (in-flight turns) finish for up to ``grace_s`` before returning."""
    import uvicorn

    config = uvicorn.Config(create_server(bot, notice=notice), host=host, port=port,
                            timeout_graceful_shutdown=None if grace_s is None else max(1, round(grace_s)),
                            **uvicorn_options())
    uvicorn.Server(config).run()
