"""What a person can do with what the assistant remembers about them: list their facts
(with history), correct one, make it forget, and see which of their messages a fact
came from. A thin layer over ``memory.facts``; every call is scoped to ``user_id``, so
one user's fact ids mean nothing to another (``FactNotFound``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.errors import ConfigurationError

if TYPE_CHECKING:
    from memory.facts import FactInfo, FactMemory
    from memory.facts_jobs import ForgetResult
    from memory.store import StoredMessage

__all__ = ["PeopleAPI"]


class PeopleAPI:
    """Mixed into ``Assistant``; needs ``self.facts`` (a ``FactMemory`` or None)."""

    facts_memory: FactMemory | None

    def _fact_memory(self) -> FactMemory:
        if self.facts_memory is None:
            raise ConfigurationError("fact memory is off (it needs a SQL store and "
                                     "LASTMILE_FACTS_ENABLED=true)")
        return self.facts_memory

    def facts(self, user_id: str = "default", include_history: bool = False) -> list[FactInfo]:
        """The user's current facts; with ``include_history`` every version (superseded,
        withdrawn and forgotten ones too), oldest first."""
        if self.facts_memory is None:
            return []
        return self.facts_memory.facts(user_id, include_history=include_history)

    def edit_fact(self, user_id: str, fact_id: int, text: str) -> FactInfo:
        """Correct a fact: a new version supersedes the old one (which stays in history)."""
        return self._fact_memory().edit(user_id, fact_id, text)

    def forget(self, user_id: str, fact_id_or_text: int | str) -> ForgetResult:
        """Forget a fact by id, or whatever matches a description ("where I live").
        Unknown targets give an explanatory ``message`` and forget nothing."""
        from memory.facts_jobs import forget

        return forget(self._fact_memory(), user_id, fact_id_or_text)

    def fact_sources(self, user_id: str, fact_id: int) -> list[StoredMessage]:
        """The user's own messages the fact was drawn from."""
        return self._fact_memory().sources(user_id, fact_id)
