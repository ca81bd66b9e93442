"""The tabs beside Chat, each gated by a role: Memory (user), Documents (user),
Review (reviewer) and Dashboard (admin)."""

from __future__ import annotations

from typing import Any

from assistant.orchestrator import Assistant
from ui.identity import Identity

__all__ = ["build_tabs"]


def build_tabs(bot: Assistant, identity: Identity) -> list[tuple[str, Any]]:
    """Build every extra tab inside the current ``gr.Tabs``; ``(role, tab)`` pairs."""
    from ui.dashboard_tab import build_dashboard

    return [("admin", build_dashboard(bot, identity))]
