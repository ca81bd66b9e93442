"""Context assembly within a token budget.

For now: the system prompt, then as many recent turns as fit, newest kept first. The
pending user turn is always kept, even if it alone exceeds the budget (the provider
will then say so rather than us silently dropping the question). Failed or cut-off
assistant replies are never fed back to the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from memory.store import StoredMessage

__all__ = ["ContextReport", "build_context", "to_langchain"]

_ROLES: dict[str, type[BaseMessage]] = {"user": HumanMessage, "assistant": AIMessage,
                                        "system": SystemMessage}


@dataclass(frozen=True)
class ContextReport:
    """What went into the prompt, per block, so replays can chart it."""

    budget: int
    system_tokens: int
    history_tokens: int
    history_messages: int
    dropped_messages: int
    message_ids: list[int] = field(default_factory=list)
    #: The recalled-memory block (added to the system message) and the turns it shows.
    memory_tokens: int = 0
    memory_ids: list[int] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.system_tokens + self.history_tokens + self.memory_tokens

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, as stored with the reply."""
        return {**asdict(self), "total_tokens": self.total_tokens}


def to_langchain(message: StoredMessage) -> BaseMessage:
    return _ROLES[message.role](content=message.content)


def build_context(
    system_prompt: str,
    history: Sequence[StoredMessage],
    *,
    budget: int,
    count: Callable[[Sequence[BaseMessage]], int],
) -> tuple[list[BaseMessage], ContextReport]:
    """Pick the newest usable turns that fit ``budget`` tokens; ``history[-1]`` is pending."""
    system = [SystemMessage(content=system_prompt)] if system_prompt else []
    system_tokens = count(system) if system else 0
    usable = [m for m in history if m.role == "user" or m.status == "ok"]
    kept: list[tuple[StoredMessage, int]] = []
    used = 0
    for index, message in enumerate(reversed(usable)):
        cost = message.token_count if message.token_count is not None else count([to_langchain(message)])
        if index > 0 and system_tokens + used + cost > budget:
            break
        kept.append((message, cost))
        used += cost
    kept.reverse()
    # A window opening on an assistant reply reads as if the model spoke first; drop it.
    while len(kept) > 1 and kept[0][0].role != "user":
        used -= kept.pop(0)[1]
    report = ContextReport(budget, system_tokens, used, len(kept), len(usable) - len(kept),
                           [m.id for m, _ in kept])
    return system + [to_langchain(m) for m, _ in kept], report
