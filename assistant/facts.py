"""``bot.facts``: what a person can do with what the assistant remembers about them —
list their facts (with history), correct one, make it forget, and see which of their
messages a fact came from. A thin layer over ``memory.facts.FactMemory``; every call is
scoped to ``user_id``, so one user's fact ids mean nothing to another (``FactNotFound``).
"""

from __future__ import annotations

import builtins
import warnings
from typing import TYPE_CHECKING

from assistant.errors import ConfigurationError

if TYPE_CHECKING:
    from assistant.records import StoredMessage
    from memory.facts import FactInfo, FactMemory
    from memory.facts_jobs import ForgetResult

__all__ = ["Facts"]


class Facts:
    """The facts API of one ``Assistant``; ``memory`` is None when fact memory is off
    (no SQL store, or ``LASTMILE_FACTS_ENABLED=false``): listing then gives nothing and
    changing raises ``ConfigurationError``."""

    def __init__(self, memory: FactMemory | None) -> None:
        self.memory = memory

    @property
    def enabled(self) -> bool:
        return self.memory is not None

    def _on(self) -> FactMemory:
        if self.memory is None:
            raise ConfigurationError("fact memory is off (it needs a SQL store and "
                                     "LASTMILE_FACTS_ENABLED=true)")
        return self.memory

    def list(self, user_id: str = "default", include_history: bool = False) -> builtins.list[FactInfo]:
        """The user's current facts; with ``include_history`` every version (superseded,
        withdrawn and forgotten ones too), oldest first."""
        if self.memory is None:
            return []
        return self.memory.facts(user_id, include_history=include_history)

    def __call__(self, user_id: str = "default", include_history: bool = False) -> builtins.list[FactInfo]:
        """Deprecated: ``bot.facts(user_id)`` was a method; use ``bot.facts.list``."""
        warnings.warn("bot.facts(user_id) is deprecated; use bot.facts.list(user_id)",
                      DeprecationWarning, stacklevel=2)
        return self.list(user_id, include_history)

    def edit(self, user_id: str, fact_id: int, text: str) -> FactInfo:
        """Correct a fact: a new version supersedes the old one (which stays in history)."""
        return self._on().edit(user_id, fact_id, text)

    def forget(self, user_id: str, fact_id_or_text: int | str) -> ForgetResult:
        """Forget a fact by id, or whatever matches a description ("where I live").
        Unknown targets give an explanatory ``message`` and forget nothing."""
        from memory.facts_jobs import forget

        return forget(self._on(), user_id, fact_id_or_text)

    def sources(self, user_id: str, fact_id: int) -> builtins.list[StoredMessage]:
        """The user's own messages the fact was drawn from."""
        return self._on().sources(user_id, fact_id)
