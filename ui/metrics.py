"""``/metrics``: Prometheus's text format, for a scraper on the operator's network.

Open like ``/healthz`` (a scraper has no sign-in) and safe to be: it carries counts,
timings, states and provider names only — never message text, and user ids only when
``LASTMILE_METRICS_LABELS`` names ``user_id`` (``assistant.metrics``).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from assistant import metrics
from assistant.orchestrator import Assistant

__all__ = ["metrics_router"]


def metrics_router(bot: Assistant) -> APIRouter:
    """``GET /metrics`` for ``bot``: the process's instruments and ``bot``'s state gauges."""
    router = APIRouter(include_in_schema=False)
    state = metrics.StateCollector(lambda: bot.model, getattr(bot.store, "engine", None))

    @router.get("/metrics")
    async def scrape() -> Response:
        # The queue gauges read the database: off the event loop.
        body = await asyncio.to_thread(metrics.render, state)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
