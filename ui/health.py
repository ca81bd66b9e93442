"""``/healthz`` (the process answers) and ``/readyz`` (it can serve a turn now).

A load balancer routes by ``/readyz``: 503 while this replica cannot reach the
database or the Chroma server (``LASTMILE_CHROMA_URL``), 200 again as soon as it can —
nothing to restart. Both are open (no sign-in) and say only their status; what failed
goes to this replica's log, not to whoever asks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from assistant.orchestrator import Assistant

__all__ = ["READY_TIMEOUT_S", "health_router"]

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 2.0  # a dependency slower than this is as good as down for a turn


def _database_ok(engine: Any) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _chroma_ok(url: str) -> None:
    # Chroma 1.x's unauthenticated liveness route; a plain GET, no client state to build.
    httpx.get(f"{url.rstrip('/')}/api/v2/heartbeat", timeout=READY_TIMEOUT_S).raise_for_status()


async def _check(name: str, fn: Any, *args: Any) -> bool:
    try:
        await asyncio.wait_for(asyncio.to_thread(fn, *args), READY_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the log says which
        log.warning("not ready: %s unreachable (%s)", name, str(exc).splitlines()[0][:200]
                    if str(exc) else type(exc).__name__)
        return False
    return True


def health_router(bot: Assistant) -> APIRouter:
    """The two probes for ``bot``'s database and Chroma server."""
    router = APIRouter(include_in_schema=False)
    engine = getattr(bot.store, "engine", None)
    chroma_url = bot.settings.chroma_url

    @router.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = []
        if engine is not None:
            checks.append(_check("database", _database_ok, engine))
        if chroma_url:
            checks.append(_check("chroma", _chroma_ok, chroma_url))
        ready = all(await asyncio.gather(*checks))
        return JSONResponse({"status": "ok" if ready else "unavailable"},
                            status_code=200 if ready else 503)

    return router
