"""The Gradio product UI: a thin adapter over ``Assistant``.

The page is assembled here from one module per tab (``ui.chat_tab``, ``ui.tabs``); all
logic (validation, storage, streaming, failure handling, isolation) stays in the
library, and every handler resolves the viewer on the server (``ui.identity``).
"""

from __future__ import annotations

from typing import Any

from assistant.settings import quiet_third_parties

# Besides Blocks(analytics_enabled=False), some Gradio telemetry reads only the
# environment, at import time. The UI must never phone home.
quiet_third_parties()

import gradio as gr  # noqa: E402

from assistant.errors import LastmileError  # noqa: E402
from assistant.orchestrator import Assistant  # noqa: E402
from memory.accounts import Accounts  # noqa: E402
from ui import views  # noqa: E402
from ui.chat_tab import QUIET, ChatTab  # noqa: E402
from ui.identity import Identity  # noqa: E402

__all__ = ["build_app", "launch_options"]


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``app.launch()``: Gradio 6 takes theme and CSS there."""
    font: list[gr.themes.Font | str] = [
        gr.themes.LocalFont("Source Sans Pro", weights=(400, 600, 700)), "ui-sans-serif",
            "system-ui", "sans-serif"]  # bundled with Gradio: nothing is fetched online
    mono: list[gr.themes.Font | str] = [gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"]
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=font, font_mono=mono)
    from ui.chat_client import RECONNECT_HEAD
    from ui.chat_extras import CHAT_CSS
    from ui.upload_limit import LIMIT_HEAD

    return {"css": views.CSS + CHAT_CSS, "head": views.HEAD + RECONNECT_HEAD + LIMIT_HEAD,
            "footer_links": [], "theme": theme}


def _model_label(bot: Assistant) -> str | None:
    try:
        return bot.model.label
    except LastmileError:
        return None


def build_app(bot: Assistant, *, user_id: str | None = None, notice: str | None = None) -> gr.Blocks:
    """The product UI for ``bot``. Without sign-in everyone is ``user_id`` (default: the
    settings' single user); ``notice`` is shown as a banner (e.g. how to install a
    missing model). Tabs a viewer's role may not use are hidden *and* refused server-side."""
    engine = getattr(bot.store, "engine", None)
    identity = Identity(bot.settings, Accounts(engine) if engine is not None else None, user_id)
    chat_tab = ChatTab(bot, identity)

    with gr.Blocks(title="lastmile", analytics_enabled=False, fill_height=True) as app:
        sidebar = gr.Sidebar(width=290)
        header = gr.HTML(views.header_html(None), elem_id="lm-header")
        gr.Markdown(views.notice_markdown(notice), visible=bool(notice), elem_id="lm-notice")
        with gr.Tabs(elem_id="lm-tabs"):
            with gr.Tab("Chat", id="chat", elem_id="lm-tab-chat"):
                load_chat, chat_outputs = chat_tab.build(sidebar)
            extra_tabs = build_extra_tabs(bot, identity, chat_outputs[0])

        def on_load(request: gr.Request) -> tuple[Any, ...]:
            viewer = identity.viewer(request)
            shown = [gr.Tab(visible=viewer.allows(role)) for role, _tab in extra_tabs]
            return (*load_chat(request), views.header_html(_model_label(bot), viewer.user_id), *shown)

        app.load(on_load, None, [*chat_outputs, header, *(tab for _, tab in extra_tabs)], **QUIET)
    # Gradio takes an input file only from its upload folder, but that check runs once the
    # app "has launched", which gr.mount_gradio_app (how we serve) never marks: without
    # this, any event's forged FileData copied any server file into the cache.
    app.has_launched = True
    return app


def build_extra_tabs(bot: Assistant, identity: Identity, session: Any) -> list[tuple[str, Any]]:
    """Memory, Documents, Review and Dashboard: ``(role needed, tab)`` each."""
    from ui.tabs import build_tabs

    return build_tabs(bot, identity, session)
