"""The model layers: models that wrap models, one family around the providers.

Every layer subclasses ``assistant.providers.base.ModelLayer`` (``children()``; the
single-child ``ModelWrapper`` exposes ``inner``, the multi-child router and fallback
``models``), and ``walk()`` there is the one way to look through a chain. One module
per layer, outermost first as ``build_model`` stacks them:

- ``safemode``   ``SafeModeModel``: kill switch on → local model, else retrieval-only
- ``cache``      ``CacheModel``: exact / semantic reply cache, per user
- ``routing``    ``RouterModel``: simple turns to a cheap chain
- ``fallback``   ``FallbackModel``: the next provider when one fails, even mid-reply
- ``resilience`` ``BreakerModel`` (circuit breaker), ``RetryingModel`` (retry)
- ``killswitch`` ``KillSwitchModel`` and the ``ControlFlags`` it reads
- ``ledger``     ``LedgerModel``: every call priced, budgeted and recorded
- ``redaction``  ``RedactingModel``: the PII egress step, innermost on a remote provider
- ``consume``    ``consume``: the one loop that reads a chain's stream for a turn
- ``compose``    ``add_layers``: router, cache and safe mode around a chain
"""

from __future__ import annotations

from assistant.layers.compose import add_layers, find_local

__all__ = ["add_layers", "find_local"]
