"""The optional layers around the provider chain, composed in one place.

``build_model`` builds the chain(s) and hands them here::

    SafeModeModel(                      kill switch on → local model, else retrieval-only
        CacheModel(                     LASTMILE_CACHE_MODE=exact|semantic, per user
            RouterModel(cheap, strong)  LASTMILE_ROUTE_CHEAP set; else just `strong`
        ))

and every remote member inside the chains is
``BreakerModel(KillSwitchModel(RetryingModel(LedgerModel(RedactingModel(provider)))))``
(``RedactingModel``: the PII egress step, see ``assistant.layers.redaction``).
Embedders who pass their own model to ``Assistant`` can call ``add_layers`` on it too.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from assistant.errors import VectorStoreUnavailable
from assistant.layers.killswitch import ControlFlags
from assistant.providers.base import ChatModel, walk

__all__ = ["add_layers", "find_local"]

log = logging.getLogger(__name__)


def find_local(*chains: ChatModel | None) -> ChatModel | None:
    """The first model in these chains that runs here (``provider == "local"``), with
    the layers it has (a ledger layer keeps recording its calls)."""
    for chain in chains:
        for node in walk(chain):
            if node.provider == "local":
                return node
    return None


def _cache(model: ChatModel, settings: Any, engine: Engine | None) -> ChatModel:
    from assistant.layers.cache import CacheModel
    from memory.response_cache import ResponseCache

    if settings.cache_mode == "off" or engine is None:
        return model
    chroma = None
    if settings.cache_mode == "semantic":
        from memory.vectors import open_chroma

        try:
            chroma = open_chroma(settings.chroma_path, settings.chroma_url)
        except VectorStoreUnavailable as exc:  # the exact cache still works without Chroma
            log.warning("semantic reply cache off: %s", exc)
    store = ResponseCache(engine, ttl_s=settings.cache_ttl_s, chroma=chroma)
    return CacheModel(model, store, semantic=chroma is not None,
                      threshold=settings.cache_semantic_threshold,
                      semantic_max_chars=settings.cache_semantic_max_chars)


def add_layers(strong: ChatModel, settings: Any, *, engine: Engine | None = None,
               cheap: ChatModel | None = None, flags: ControlFlags | None = None,
               local: ChatModel | None = None) -> ChatModel:
    """Router (with ``cheap``), cache and safe mode around ``strong``, as settings say."""
    from assistant.layers.routing import RouterModel
    from assistant.layers.safemode import SafeModeModel

    flags = flags or ControlFlags.from_settings(settings, engine)
    model = strong if cheap is None else RouterModel(cheap, strong, max_chars=settings.route_max_chars)
    model = _cache(model, settings, engine)
    return SafeModeModel(model, flags, local=local or find_local(strong, cheap),
                         on_outage=settings.safe_mode_on_outage)
