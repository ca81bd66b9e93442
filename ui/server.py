"""One process, one port: the Gradio UI mounted on a FastAPI app that also serves the
OpenAI-compatible ``/v1`` routes, so the UI and API clients share one ``Assistant``
(one database, one model load, one memory).
"""

from __future__ import annotations

from typing import Any

from assistant.settings import Settings, quiet_third_parties

quiet_third_parties()

import gradio as gr  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

from assistant.orchestrator import Assistant  # noqa: E402
from memory.accounts import Accounts  # noqa: E402
from ui.app import build_app, launch_options  # noqa: E402
from ui.openai_api import openai_router  # noqa: E402

__all__ = ["create_server", "serve"]


def _accounts(bot: Assistant) -> Accounts | None:
    engine = getattr(bot.store, "engine", None)
    return Accounts(engine) if engine is not None else None


def _sign_in(settings: Settings, accounts: Accounts | None) -> dict[str, Any]:
    """Gradio's auth options for the configured mode; none for a single-user setup."""
    if settings.auth == "password" and accounts is not None:
        return {"auth": lambda user, password: accounts.authenticate(user, password) is not None,
                "auth_message": "Sign in to lastmile."}
    if settings.auth == "header":
        header = settings.auth_header

        def from_proxy(request: Request) -> str | None:
            return request.headers.get(header) or None

        return {"auth_dependency": from_proxy}
    return {}


def create_server(bot: Assistant, *, notice: str | None = None) -> FastAPI:
    """The FastAPI app: ``/v1/*`` for OpenAI clients, the chat UI at ``/``."""
    settings = bot.settings
    accounts = _accounts(bot)
    app = FastAPI(title="lastmile", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(openai_router(bot, accounts, require_key=settings.auth != "none",
                                     default_user=settings.default_user))
    blocks = build_app(bot, user_id=settings.default_user, notice=notice)
    blocks.queue(default_concurrency_limit=4)
    return gr.mount_gradio_app(app, blocks, path="", show_error=True,
                               **_sign_in(settings, accounts), **launch_options())


def serve(bot: Assistant, *, host: str, port: int, notice: str | None = None) -> None:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    uvicorn.run(create_server(bot, notice=notice), host=host, port=port, log_level="warning")
