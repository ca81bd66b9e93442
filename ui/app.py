"""The Gradio chat UI: a thin adapter over ``Assistant``.

Every handler reads what it shows from the store, so a reload or a server restart shows
exactly what was saved. The only per-tab state is which session is open; all logic
(validation, storage, streaming, failure handling) stays in the library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar

from assistant.settings import quiet_third_parties

# Besides Blocks(analytics_enabled=False), some Gradio telemetry reads only the
# environment, at import time. The UI must never phone home.
quiet_third_parties()

import gradio as gr  # noqa: E402

from assistant.errors import LastmileError  # noqa: E402
from assistant.orchestrator import Assistant  # noqa: E402
from assistant.reply import Restart  # noqa: E402
from ui import views  # noqa: E402

__all__ = ["build_app", "launch_options"]

F = TypeVar("F", bound=Callable[..., Any])
_QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``app.launch()``: Gradio 6 takes theme and CSS there."""
    font = [gr.themes.LocalFont("Source Sans Pro", weights=(400, 600, 700)), "ui-sans-serif",
            "system-ui", "sans-serif"]  # bundled with Gradio: nothing is fetched online
    mono = [gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"]
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=font, font_mono=mono)
    return {"css": views.CSS, "head": views.HEAD, "footer_links": [], "theme": theme}


def _friendly(fn: F) -> F:
    """Turn library errors into a dialog with their user-facing sentence."""

    @wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except LastmileError as exc:
            raise gr.Error(exc.user_message) from exc

    return wrapper  # type: ignore[return-value]


def _model_label(bot: Assistant) -> str | None:
    try:
        return bot.model.label
    except LastmileError:
        return None


def build_app(bot: Assistant, *, user_id: str = "default", notice: str | None = None) -> gr.Blocks:
    """The chat UI for ``bot``, chatting as ``user_id``; ``notice`` is shown as a banner
    (e.g. how to install a missing model)."""

    def sidebar(session_id: str, select: bool = True) -> tuple[Any, str]:
        sessions = bot.sessions(user_id)
        title = next((s.title for s in sessions if s.session_id == session_id), "")
        choices = views.session_choices(sessions)
        radio = gr.Radio(choices=choices, value=session_id) if select else gr.Radio(choices=choices)
        return radio, title

    @_friendly
    def after_send(session_id: str) -> tuple[Any, str]:
        # The first message titles the chat and reorders the list; the selection is
        # left alone in case the user already switched elsewhere.
        return sidebar(session_id, select=False)

    def show(session_id: str) -> tuple[Any, ...]:
        history = views.chat_messages(bot.history(session_id, user_id=user_id))
        return (session_id, *sidebar(session_id), history)

    @_friendly
    def on_load() -> tuple[Any, ...]:
        sessions = bot.sessions(user_id)
        session_id = sessions[0].session_id if sessions else bot.new_session(user_id).session_id
        return (*show(session_id), views.header_html(_model_label(bot)))

    @_friendly
    def on_new(session_id: str | None) -> tuple[Any, ...]:
        current = next((s for s in bot.sessions(user_id) if s.session_id == session_id), None)
        if current is None or current.message_count:  # an empty chat is reused, not piled up
            session_id = bot.new_session(user_id).session_id
        return show(session_id)  # type: ignore[arg-type]

    @_friendly
    def on_switch(session_id: str) -> tuple[Any, ...]:
        return show(session_id)

    @_friendly
    def on_rename(session_id: str, title: str) -> tuple[Any, str]:
        try:
            bot.rename_session(session_id, title, user_id=user_id)
        except ValueError:
            gr.Warning("A chat title cannot be empty.")
        return sidebar(session_id)

    def on_send(text: str, session_id: str | None) -> Iterator[tuple[Any, Any]]:
        if not session_id:
            gr.Warning("The page is still loading; please try again in a moment.")
            yield gr.skip(), gr.skip()
            return
        try:
            stream = bot.stream(text, session_id=session_id, user_id=user_id)
        except LastmileError as exc:  # rejected input: nothing stored, text kept
            gr.Warning(exc.user_message)
            yield gr.skip(), gr.skip()
            return
        try:
            chat = views.chat_messages(bot.history(session_id, user_id=user_id))
            yield "", [*chat, {"role": "assistant", "content": views.TYPING}]
            partial = ""
            for chunk in stream:
                if isinstance(chunk, Restart):  # a provider failed mid-reply; next one starts over
                    gr.Info(f"The reply was restarted on {chunk.provider} "
                            "(the previous provider failed mid-answer).")
                    partial = ""
                    continue
                partial += chunk
                yield gr.skip(), [*chat, {"role": "assistant", "content": partial}]
        except LastmileError as exc:
            raise gr.Error(exc.user_message) from exc
        reply = stream.reply
        assert reply is not None
        done = views.assistant_content(reply.text, reply.provider, reply.status, reply.error,
                                       reply.finish_reason)
        yield gr.skip(), [*chat, {"role": "assistant", "content": done}]

    with gr.Blocks(title="lastmile", analytics_enabled=False, fill_height=True) as app:
        session = gr.State(None)
        with gr.Sidebar(width=290):
            gr.HTML('<div class="lm-sidebar-title">Conversations</div>')
            new_btn = gr.Button("+  New chat", variant="primary", elem_id="lm-new")
            sessions = gr.Radio(choices=[], show_label=False, container=False,
                                elem_id="lm-sessions")
            with gr.Accordion("Rename this chat", open=False, elem_id="lm-rename-box"):
                title_box = gr.Textbox(show_label=False, max_lines=1, elem_id="lm-title",
                                       placeholder="Chat title", container=False)
                rename_btn = gr.Button("Save title", size="sm", elem_id="lm-rename")
        header = gr.HTML(views.header_html(None), elem_id="lm-header")
        gr.Markdown(views.notice_markdown(notice), visible=bool(notice), elem_id="lm-notice")
        chat = gr.Chatbot(show_label=False, elem_id="lm-chat", scale=1, height="68vh",
                          feedback_options=None, buttons=["copy"], autoscroll=True,
                          placeholder="**How can I help?**<br>Your conversations are saved "
                                      "and listed on the left.")
        with gr.Row(equal_height=True):
            box = gr.Textbox(show_label=False, placeholder="Message lastmile… (Enter to send)",
                             scale=8, max_lines=8, autofocus=True, elem_id="lm-input",
                             container=False)
            send_btn = gr.Button("Send", variant="primary", scale=1, min_width=90,
                                 elem_id="lm-send")

        opened = [session, sessions, title_box, chat]
        app.load(on_load, None, [*opened, header], **_QUIET)
        turns: list[Any] = []
        for trigger in (box.submit, send_btn.click):
            turn = trigger(on_send, [box, session], [box, chat], api_visibility="private",
                           show_progress="minimal")
            turn.then(after_send, [session], [sessions, title_box], **_QUIET)
            turns.append(turn)
        # Leaving a chat stops its reply (stored, marked incomplete) so it can't stream
        # into the chat now on screen.
        new_btn.click(on_new, [session], opened, cancels=turns, **_QUIET)
        sessions.input(on_switch, [sessions], opened, cancels=turns, **_QUIET)
        for trigger in (title_box.submit, rename_btn.click):
            trigger(on_rename, [session, title_box], [sessions, title_box], **_QUIET)
    return app
