"""The Chat tab: sessions, streamed replies, citations, feedback, regenerate and edit.

Every handler reads what it shows from the store, so a reload or a restart shows
exactly what was saved; the only per-tab state is which session is open and which
message ids the visible bubbles belong to. The viewer comes from the request on every
call, so one browser can never act on another user's session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast

import gradio as gr

from assistant.audit import audit
from assistant.errors import LastmileError
from assistant.orchestrator import Assistant
from assistant.reply import ReplyStream, Restart
from assistant.reply_record import ReplyRecord
from ui import views

if TYPE_CHECKING:
    from memory.store import ConversationStore
from ui.identity import Identity

__all__ = ["QUIET", "ChatTab", "friendly", "shown_error"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


def shown_error(exc: BaseException) -> gr.Error:
    """A short toast for ``exc`` with a reference id that finds its audit-log line; a
    stack trace never reaches the page."""
    if isinstance(exc, LastmileError):
        ref = audit("ui_error", error=type(exc).__name__, detail=str(exc))
        return gr.Error(f"{exc.user_message} (ref {ref})")
    ref = audit("ui_crash", error=type(exc).__name__, detail=str(exc))
    log.error("UI handler failed (ref %s)", ref, exc_info=exc)
    return gr.Error(f"Something went wrong on our side; nothing you typed was lost. (ref {ref})")


def friendly(fn: F) -> F:
    """Errors become a toast with a user-facing sentence and a reference id."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # every failure becomes a toast, never a trace
            raise shown_error(exc) from exc

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps fn's signature


class ChatTab:
    """Builds the chat components inside the current Blocks and wires their events."""

    def __init__(self, bot: Assistant, identity: Identity) -> None:
        self.bot, self.identity = bot, identity

    # what the page shows -------------------------------------------------------------
    def _view(self, user_id: str, session_id: str,
              errors: dict[int, str] | None = None) -> tuple[Any, list[list[Any]], str]:
        messages, ids, liked, cites = self._rows(user_id, session_id, errors)
        # gradio wants its MessageDict (a TypedDict); these are plain dicts with its keys.
        return gr.Chatbot(value=messages, feedback_value=liked), ids, cites  # type: ignore[arg-type]

    def _rows(self, user_id: str, session_id: str, errors: dict[int, str] | None = None
              ) -> tuple[list[dict[str, str]], list[list[Any]], list[str | None], str]:
        history = [m for m in self.bot.sessions.history(session_id, user_id=user_id)
                   if m.status != "superseded"]
        feedback = cast("ConversationStore", self.bot.store).feedback(user_id, session_id)  # the app's store
        ledger = getattr(self.bot, "ledger", None)
        costs = ledger.turn_costs(user_id, [m.id for m in history if m.role == "user"]) if ledger else {}
        messages, ids, liked = views.chat_view(history, feedback, costs, errors)
        last = next((m for m in reversed(history) if m.role == "assistant"), None)
        citations = ReplyRecord.from_dict(last.context).citations if last is not None else None
        return messages, ids, liked, views.citations_html(citations)

    def _sidebar(self, user_id: str, session_id: str, select: bool = True) -> tuple[Any, str]:
        sessions = self.bot.sessions.list(user_id)
        title = next((s.title for s in sessions if s.session_id == session_id), "")
        choices = views.session_choices(sessions)
        radio = gr.Radio(choices=choices, value=session_id) if select else gr.Radio(choices=choices)
        return radio, title

    def _show(self, user_id: str, session_id: str) -> tuple[Any, ...]:
        chat, ids, cites = self._view(user_id, session_id)
        return (session_id, *self._sidebar(user_id, session_id), chat, ids, cites)

    # streaming ----------------------------------------------------------------------
    def _stream(self, user_id: str, session_id: str, start: Callable[[], ReplyStream],
                clear_box: bool) -> Iterator[tuple[Any, ...]]:
        box = "" if clear_box else gr.skip()
        try:
            stream = start()
        except LastmileError as exc:  # rejected input: nothing stored, text kept
            gr.Warning(exc.user_message)
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        try:
            shown = self._rows(user_id, session_id)[0]
            yield box, [*shown, {"role": "assistant", "content": views.TYPING}], gr.skip(), ""
            partial = ""
            for chunk in stream:
                if isinstance(chunk, Restart):  # the text so far is void; the next model starts over
                    why = ("a stronger model was needed" if chunk.reason.startswith("escalated")
                           else "the previous provider failed mid-answer")
                    gr.Info(f"The reply was restarted on {chunk.provider} ({why}).")
                    partial = ""
                    continue
                partial += chunk
                yield gr.skip(), [*shown, {"role": "assistant", "content": partial}], gr.skip(), gr.skip()
        except gr.Error:
            raise
        except Exception as exc:  # the turn is stored; the page gets a toast
            raise shown_error(exc) from exc
        reply = stream.reply
        assert reply is not None
        if getattr(reply, "notice", None):  # safe mode, a weaker fallback: say so, visibly
            gr.Warning(reply.notice)
        errors = {reply.message_id: reply.error} if reply.error and reply.message_id else None
        chat, ids, _ = self._view(user_id, session_id, errors)
        yield gr.skip(), chat, ids, views.citations_html(getattr(reply, "citations", None))

    # layout and events ---------------------------------------------------------------
    def build(self, sidebar: Any) -> tuple[Callable[..., tuple[Any, ...]], list[Any]]:
        """Create the components; returns the page-load handler and its outputs."""
        bot, identity = self.bot, self.identity
        session, ids = gr.State(None), gr.State([])
        with sidebar:
            gr.HTML('<div class="lm-sidebar-title">Conversations</div>')
            new_btn = gr.Button("+  New chat", variant="primary", elem_id="lm-new")
            sessions = gr.Radio(choices=[], show_label=False, container=False, elem_id="lm-sessions")
            # Always mounted (not in a closed accordion): a box that mounts on opening can
            # take the server's value after the user started typing.
            with gr.Row(equal_height=True, elem_id="lm-rename-box"):
                title_box = gr.Textbox(show_label=False, max_lines=1, elem_id="lm-title",
                                       placeholder="Chat title", container=False, scale=3)
                rename_btn = gr.Button("Rename", size="sm", elem_id="lm-rename", scale=1,
                                       min_width=70)
            with gr.Accordion("Delete this chat", open=False, elem_id="lm-delete-box"):
                gr.Markdown("Deletes its messages for good, including from memory.")
                delete_btn = gr.Button("Delete permanently", size="sm", variant="stop",
                                       elem_id="lm-delete")
        chat = gr.Chatbot(show_label=False, elem_id="lm-chat", scale=1, height="62vh",
                          feedback_options=("Like", "Dislike"), buttons=["copy"], autoscroll=True,
                          editable="user", placeholder="**How can I help?**<br>Your conversations "
                          "are saved and listed on the left.")
        with gr.Row(equal_height=True):
            box = gr.Textbox(show_label=False, placeholder="Message lastmile… (Enter to send)",
                             scale=8, max_lines=8, autofocus=True, elem_id="lm-input",
                             container=False)
            send_btn = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="lm-send")
        cites = gr.HTML("", elem_id="lm-citations")
        opened = [session, sessions, title_box, chat, ids, cites]

        def on_load(request: gr.Request) -> tuple[Any, ...]:
            user = identity.viewer(request).user_id
            listed = bot.sessions.list(user)
            session_id = listed[0].session_id if listed else bot.sessions.new(user).session_id
            return self._show(user, session_id)

        @friendly
        def on_new(session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
            user = identity.viewer(request).user_id
            current = next((s for s in bot.sessions.list(user) if s.session_id == session_id), None)
            if current is None or current.message_count:  # an empty chat is reused
                session_id = bot.sessions.new(user).session_id
            return self._show(user, session_id)  # type: ignore[arg-type]  # not None: an existing session's or a new one

        @friendly
        def on_switch(session_id: str, request: gr.Request) -> tuple[Any, ...]:
            return self._show(identity.viewer(request).user_id, session_id)

        @friendly
        def on_rename(session_id: str, title: str, request: gr.Request) -> tuple[Any, str]:
            user = identity.viewer(request).user_id
            try:
                bot.sessions.rename(session_id, title, user_id=user)
            except ValueError:
                gr.Warning("A chat title cannot be empty.")
            return self._sidebar(user, session_id)

        @friendly
        def on_delete(session_id: str, request: gr.Request) -> tuple[Any, ...]:
            user = identity.viewer(request).user_id
            bot.sessions.delete(session_id, user_id=user)
            gr.Info("Chat deleted.")
            return on_load(request)

        @friendly
        def after_turn(session_id: str, request: gr.Request) -> tuple[Any, str]:
            return self._sidebar(identity.viewer(request).user_id, session_id, select=False)

        def on_send(text: str, session_id: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            if not session_id:
                gr.Warning("The page is still loading; please try again in a moment.")
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            user = identity.viewer(request).user_id
            yield from self._stream(user, session_id, lambda: bot.stream(
                text, session_id=session_id, user_id=user), clear_box=True)

        def on_retry(session_id: str, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            user = identity.viewer(request).user_id
            yield from self._stream(user, session_id, lambda: bot.sessions.regenerate(
                session_id, user_id=user), clear_box=False)

        def on_edit(session_id: str, shown: list[list[Any]], data: gr.EditData,
                    request: gr.Request) -> Iterator[tuple[Any, ...]]:
            user = identity.viewer(request).user_id
            index = data.index if isinstance(data.index, int) else data.index[0]
            user_rows = [i for i, (mid, role) in enumerate(shown) if role == "user"]
            if not user_rows or index != user_rows[-1]:
                gr.Warning("Only your last message can be edited.")
                chat, _, _ = self._view(user, session_id)
                yield gr.skip(), chat, gr.skip(), gr.skip()
                return
            yield from self._stream(user, session_id, lambda: bot.sessions.edit_and_resend(
                str(data.value), session_id=session_id, user_id=user), clear_box=False)

        @friendly
        def on_like(shown: list[list[Any]], data: gr.LikeData, request: gr.Request) -> None:
            user = identity.viewer(request).user_id
            index = data.index if isinstance(data.index, int) else data.index[0]
            if 0 <= index < len(shown) and shown[index][1] == "assistant":
                value = 1 if data.liked is True else -1 if data.liked is False else 0
                bot.sessions.feedback(shown[index][0], value, user_id=user)

        turn_out = [box, chat, ids, cites]
        turns: list[Any] = []
        for trigger in (box.submit, send_btn.click):
            turn = trigger(on_send, [box, session], turn_out, api_visibility="private",
                           show_progress="minimal")
            turn.then(after_turn, [session], [sessions, title_box], **QUIET)
            turns.append(turn)
        turns.append(chat.retry(on_retry, [session], turn_out, api_visibility="private"))
        turns.append(chat.edit(on_edit, [session, ids], turn_out, api_visibility="private"))
        chat.like(on_like, [ids], None, **QUIET)
        # Leaving a chat stops its reply (stored, marked incomplete) so it can't stream
        # into the chat now on screen.
        new_btn.click(on_new, [session], opened, cancels=turns, **QUIET)
        sessions.input(on_switch, [sessions], opened, cancels=turns, **QUIET)
        delete_btn.click(on_delete, [session], opened, cancels=turns, **QUIET)
        for trigger in (title_box.submit, rename_btn.click):
            trigger(on_rename, [session, title_box], [sessions, title_box], **QUIET)
        return on_load, opened
