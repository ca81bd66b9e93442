"""``/admin/settings``: the Settings tab over HTTP, for admins only.

``GET`` shows what is in force, the environment's values and which fields are
overridden; ``PUT`` with a JSON object changes fields for every process (the same
checks as the tab; a bad value is a 400 naming it); ``DELETE`` goes back to the
environment's settings. Anyone signed in without the admin role gets a 403, whatever
the browser shows; the gate (``ui.gate``) has already refused anyone not signed in, and
cross-site writes are refused by ``ui.http_guards``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from assistant.orchestrator import Assistant
from ui.gate import signed_in
from ui.settings_tab import save_settings, settings_snapshot

__all__ = ["settings_router"]


def _admin(bot: Assistant, request: Request) -> str | None:
    """The admin's user id, or None when the requester is not an admin."""
    settings = bot.settings
    viewer = signed_in(request.scope)
    if viewer is None:  # auth=none: the single operator (the gate resolved nobody)
        return settings.default_user if settings.auth == "none" \
            and settings.single_user_role == "admin" else None
    return viewer.user_id if viewer.role == "admin" else None


def _refused() -> JSONResponse:
    return JSONResponse({"detail": "Settings are for admins."}, status_code=403)


def settings_router(bot: Assistant) -> APIRouter:
    """The three routes over ``bot``'s runtime settings."""
    router = APIRouter(prefix="/admin", include_in_schema=False)

    @router.get("/settings")
    async def show(request: Request) -> JSONResponse:
        if _admin(bot, request) is None:
            return _refused()
        return JSONResponse(await run_in_threadpool(settings_snapshot, bot))

    @router.put("/settings")
    async def change(request: Request) -> JSONResponse:
        admin = _admin(bot, request)
        if admin is None:
            return _refused()
        try:
            values: Any = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"detail": "The body must be a JSON object."}, status_code=400)
        try:
            snap = await run_in_threadpool(lambda: save_settings(bot, values, by=admin))
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse(snap)

    @router.delete("/settings")
    async def reset(request: Request) -> JSONResponse:
        admin = _admin(bot, request)
        if admin is None:
            return _refused()
        await run_in_threadpool(lambda: bot.runtime.reset(by=admin))
        return JSONResponse(await run_in_threadpool(settings_snapshot, bot))

    return router
