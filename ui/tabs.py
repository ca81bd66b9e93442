"""The tabs beside Chat, each gated by a role: Memory (user), Documents (user),
Review (reviewer), Dashboard (admin) and Settings (admin)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from assistant.orchestrator import Assistant
from ui.identity import Identity

__all__ = ["build_tabs"]


def build_tabs(bot: Assistant, identity: Identity, session: gr.State) -> list[tuple[str, Any]]:
    """Build every extra tab inside the current ``gr.Tabs``; ``(role, tab)`` pairs.
    ``session`` is the Chat tab's open session (the Memory tab shows its summary)."""
    from ui.dashboard_tab import build_dashboard
    from ui.documents_tab import build_documents
    from ui.memory_tab import build_memory
    from ui.review_tab import build_review
    from ui.settings_tab import build_settings

    return [("user", build_memory(bot, identity, session)),
            ("user", build_documents(bot, identity)),
            ("reviewer", build_review(bot, identity)),
            ("admin", build_dashboard(bot, identity)),
            ("admin", build_settings(bot, identity))]
