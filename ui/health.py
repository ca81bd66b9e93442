"""``/healthz`` (the process answers) and ``/readyz`` (it can serve a turn now).

A load balancer routes by ``/readyz``: 503 while this replica cannot reach the
database or the Chroma server (``LASTMILE_CHROMA_URL``), or has no model to answer with
(no member of the chain usable: each one's own check fails or its circuit is open), 200
again as soon as it can — nothing to restart. Both are open (no sign-in) and say only
their status; what failed goes to this replica's log, not to whoever asks.
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
from assistant.providers.base import children, walk

__all__ = ["READY_TIMEOUT_S", "health_router"]

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 2.0  # a dependency slower than this is as good as down for a turn


def _database_ok(engine: Any) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _chroma_ok(url: str) -> None:
    # Chroma 1.x's unauthenticated liveness route; a plain GET, no client state to build.
    httpx.get(f"{url.rstrip('/')}/api/v2/heartbeat", timeout=READY_TIMEOUT_S).raise_for_status()


def _model_ok(bot: Assistant) -> None:
    """Some member of the chain can answer: it passes its own check (model file, key) and
    no open circuit breaker stands in front of it."""
    model = bot.model  # a chain that cannot be built raises here
    blocked: set[int] = set()
    for node in walk(model):
        breaker = getattr(node, "breaker", None)
        if breaker is not None and breaker.state == "open":
            blocked.update(id(n) for n in walk(node))
    leaves = [n for n in walk(model) if not children(n)]
    hints = [f"{n.label}: {'circuit open' if id(n) in blocked else n.check()}" for n in leaves
             if id(n) in blocked or n.check() is not None]
    if len(hints) == len(leaves):
        raise RuntimeError("no usable model: " + "; ".join(hints))


async def _check(name: str, fn: Any, *args: Any) -> bool:
    try:
        await asyncio.wait_for(asyncio.to_thread(fn, *args), READY_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the log says which
        log.warning("not ready: %s unreachable (%s)", name, str(exc).splitlines()[0][:200]
                    if str(exc) else type(exc).__name__)
        return False
    return True


def health_router(bot: Assistant) -> APIRouter:
    """The two probes for ``bot``'s database, Chroma server and model chain."""
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
        checks.append(_check("model", _model_ok, bot))
        ready = all(await asyncio.gather(*checks))
        return JSONResponse({"status": "ok" if ready else "unavailable"},
                            status_code=200 if ready else 503)

    return router
