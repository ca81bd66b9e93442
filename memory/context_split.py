"""How one model's token budget is split between the prompt blocks for a turn.

The shares come from ``Settings`` (validated there: none negative, summing to at most
1); they apply to what is left of the prompt budget after the system prompt, and each
is capped in tokens. Blocks a turn does not have (no memory, no documents) get 0, so
their share goes to the recent turns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from assistant.errors import ContextWindowTooSmall

__all__ = ["SMALL_WINDOW", "Split", "check_window", "memory_cap", "plan_split"]

#: Windows up to this many tokens are "small": the fixed memory cap applies there.
SMALL_WINDOW = 4096


def check_window(settings: Any, context_window: int, system_tokens: int) -> None:
    """Raise ``ContextWindowTooSmall`` when the window leaves no room for any turn after
    the reply reserve and the system prompt (a replay or bench checks this up front)."""
    need = settings.max_reply_tokens + system_tokens
    if context_window <= need:
        raise ContextWindowTooSmall(
            f"a {context_window}-token context window cannot hold the system prompt ({system_tokens} "
            f"tokens) and the reply reserve ({settings.max_reply_tokens} tokens); use a window "
            f"above {need} tokens or lower LASTMILE_MAX_REPLY_TOKENS")


def memory_cap(settings: Any, context_window: int) -> int:
    """The memory block's token cap for this window (issue 17): the fixed
    ``memory_budget_tokens`` only where the window is small; a large window's memory
    share is used, up to ``memory_max_tokens`` (the block is then filled to it)."""
    if context_window <= SMALL_WINDOW:
        return int(settings.memory_budget_tokens)
    return int(getattr(settings, "memory_max_tokens", settings.memory_budget_tokens))


@dataclass(frozen=True)
class Split:
    """Token budgets for one turn. ``prompt`` is everything but the ``reply`` reserve."""

    window: int
    reply: int
    prompt: int
    summary: int = 0
    memory: int = 0
    documents: int = 0
    recent_min: int = 0
    #: How far the memory block may grow into recent-turn tokens the window leaves unused
    #: (a new session has almost no history: its budget goes to what memory recalls).
    memory_cap: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def plan_split(settings: Any, context_window: int, system_tokens: int, *, summary: bool = True,
               memory: bool = True, documents: bool = True) -> Split:
    """Budgets for ``settings`` on a model with ``context_window`` tokens.

    The prompt budget is ``context_budget_tokens`` when set, else the window minus the
    reply reserve (``max_reply_tokens``), never below 64 tokens.
    """
    reply = settings.max_reply_tokens
    prompt = settings.context_budget_tokens or max(64, context_window - reply)
    avail = max(0, prompt - system_tokens)

    def share(enabled: bool, fraction: float, cap: int) -> int:
        return min(cap, int(avail * fraction)) if enabled else 0

    return Split(
        window=context_window, reply=reply, prompt=prompt,
        summary=share(summary and settings.summarize_sessions, settings.context_summary_share,
                      settings.summary_max_tokens),
        memory=share(memory, settings.context_memory_share, memory_cap(settings, context_window)),
        documents=share(documents, settings.context_documents_share, settings.documents_max_tokens),
        recent_min=int(avail * settings.context_recent_min_share),
        memory_cap=memory_cap(settings, context_window) if memory else 0)
