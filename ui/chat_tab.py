"""The Chat tab: sessions, streamed replies, citations, feedback, regenerate and edit;
Stop, messages queued while a reply streams, and files attached to a message.

Every handler reads what it shows from the store, so a reload or a restart shows
exactly what was saved; the only per-tab state is which session is open and which
message ids the visible bubbles belong to. The viewer comes from the request on every
call, so one browser can never act on another user's session. What streams right now
(and what waits for it) is in ``ui.chat_turns``, shared by every tab; search, export,
versions, the collection picker and the memory notice are wired in ``ui.chat_extras``.
"""

from __future__ import annotations

import html
import logging
import shutil
from collections.abc import Callable, Generator, Iterator, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import gradio as gr

from assistant.audit import audit
from assistant.errors import LastmileError
from assistant.orchestrator import Assistant
from assistant.reply import ReplyStream, Restart
from assistant.reply_record import ReplyRecord
from ui import views
from ui.chat_turns import Queued, Turns

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
        self.turns = Turns()

    # what the page shows -------------------------------------------------------------
    def _view(self, user_id: str, session_id: str,
              errors: dict[int, str] | None = None, note: str = "") -> tuple[Any, list[list[Any]], str]:
        messages, ids, liked, cites = self._rows(user_id, session_id, errors)
        messages = [*with_note(messages, note), *self._queued(user_id, session_id)]
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

    def _queued(self, user_id: str, session_id: str) -> list[dict[str, str]]:
        """Messages waiting for the streaming reply, shown as such (not stored yet)."""
        return [{"role": "user", "content": f"{q.text}\n\n{QUEUED_MARK}"}
                for q in self.turns.queued(user_id, session_id)]

    def _sidebar(self, user_id: str, session_id: str, select: bool = True) -> tuple[Any, str]:
        sessions = self.bot.sessions.list(user_id)
        title = next((s.title for s in sessions if s.session_id == session_id), "")
        choices = views.session_choices(sessions)
        radio = gr.Radio(choices=choices, value=session_id) if select else gr.Radio(choices=choices)
        return radio, title

    def _show(self, user_id: str, session_id: str) -> tuple[Any, ...]:
        chat, ids, cites = self._view(user_id, session_id)
        streaming = self.turns.partial(user_id, session_id) is not None
        return (session_id, *self._sidebar(user_id, session_id), chat, ids, cites,
                gr.Button(visible=streaming))

    # streaming ----------------------------------------------------------------------
    def _run(self, user_id: str, session_id: str, token: object,
             first: Callable[[], ReplyStream], files: list[Any], clear_box: bool,
             refused: Sequence[str] = ()) -> Iterator[tuple[Any, ...]]:
        """Stream the first turn, then each message queued meanwhile, until none waits.
        ``refused``: lines for files the page kept back from this message (too big)."""
        start: Callable[[], ReplyStream] | None = first
        done = False
        last: tuple[Any, ...] | None = None
        try:
            while start is not None:
                view = yield from self._one(user_id, session_id, token, start, files, clear_box, refused)
                last = view if view is not None else last
                clear_box = False
                nxt = self.turns.next_or_release(user_id, session_id, token)
                start, files, refused = (None, [], ()) if nxt is None else (
                    self._starter(user_id, session_id, nxt), list(nxt.files), nxt.refused)
                if start is not None and view is not None:
                    yield view
            done = True
        finally:
            if not done:  # a crash or a page that left: what still waited is said, not lost
                left = self.turns.abandon(user_id, session_id, token)
                if left:
                    log.info("%d queued message(s) of a failed turn were not sent", len(left))
        # The finished view and the hidden Stop go out as one update, the generator's last:
        # the page may render only the newest of updates that arrive together, so a later
        # all-skip update would hide the finished reply behind its last streamed text.
        last = last or (gr.skip(),) * 4
        yield (*last[:4], gr.Button(visible=False))

    def _starter(self, user_id: str, session_id: str, item: Queued) -> Callable[[], ReplyStream]:
        return lambda: self.bot.stream(message_text(item.text, item.files),
                                       session_id=session_id, user_id=user_id)

    def _one(self, user_id: str, session_id: str, token: object, start: Callable[[], ReplyStream],
             files: list[Any], clear_box: bool, refused: Sequence[str] = ()
             ) -> Generator[tuple[Any, ...], None, tuple[Any, ...] | None]:
        """Yield the streamed reply; return the finished view (None: input rejected)."""
        box = EMPTY_BOX if clear_box else gr.skip()
        try:
            stream = start()
        except LastmileError as exc:  # rejected input: nothing stored, text kept
            gr.Warning(exc.user_message)
            return None
        self.turns.started(token, stream)
        note = ""
        if files or refused:  # stored message first, then its files: the reply's retrieval sees them
            from ui.chat_attach import attach_files

            note = attach_files(self.bot, user_id, session_id, files, refused).note()
        try:
            shown = with_note(self._rows(user_id, session_id)[0], note)
            typing = {"role": "assistant", "content": views.TYPING}
            yield box, [*shown, typing, *self._queued(user_id, session_id)], gr.skip(), "", \
                gr.Button(visible=True)
            partial = ""
            for chunk in stream:
                if isinstance(chunk, Restart):  # the text so far is void; the next model starts over
                    why = ("a stronger model was needed" if chunk.reason.startswith("escalated")
                           else "the previous provider failed mid-answer")
                    gr.Info(f"The reply was restarted on {chunk.provider} ({why}).")
                    partial = ""
                    continue
                partial += chunk
                self.turns.progress(token, partial)
                yield gr.skip(), [*shown, {"role": "assistant", "content": partial},
                                  *self._queued(user_id, session_id)], gr.skip(), gr.skip(), gr.skip()
        except gr.Error:
            raise
        except Exception as exc:  # the turn is stored; the page gets a toast
            raise shown_error(exc) from exc
        reply = stream.reply
        assert reply is not None
        if getattr(reply, "notice", None):  # safe mode, a weaker fallback: say so, visibly
            gr.Warning(reply.notice)
        errors = {reply.message_id: reply.error} if reply.error and reply.message_id else None
        chat, ids, _ = self._view(user_id, session_id, errors, note)
        return gr.skip(), chat, ids, views.citations_html(getattr(reply, "citations", None)), gr.skip()

    def stop(self, user_id: str, session_id: str | None) -> bool:
        """Stop the chat's streaming reply (harmless when none streams)."""
        return bool(session_id) and self.turns.stop(user_id, session_id)  # type: ignore[arg-type]

    def leave(self, user_id: str, session_id: str | None) -> None:
        """The page leaves this chat: its reply stops; queued text is handed back."""
        if not session_id:
            return
        left = self.turns.drop(user_id, session_id)
        if left:
            gr.Warning("Not sent (you left the chat while it waited): "
                       + " · ".join(q.text[:80] for q in left))

    # layout and events ---------------------------------------------------------------
    def build(self, sidebar: Any) -> tuple[Callable[..., tuple[Any, ...]], list[Any]]:
        """Create the components; returns the page-load handler and its outputs."""
        from ui.chat_attach import max_file_bytes  # it imports this module
        from ui.upload_limit import CHAT_FIELD, kept_back

        bot, identity = self.bot, self.identity
        session, ids = gr.State(None), gr.State([])
        with sidebar:
            gr.HTML('<div class="lm-sidebar-title">Conversations</div>')
            new_btn = gr.Button("+  New chat", variant="primary", elem_id="lm-new")
            search_box = gr.Textbox(show_label=False, max_lines=1, elem_id="lm-search",
                                    placeholder="Search your chats…", container=False)
            sessions = gr.Radio(choices=[], show_label=False, container=False, elem_id="lm-sessions")
            # Always mounted (not in a closed accordion): a box that mounts on opening can
            # take the server's value after the user started typing.
            with gr.Row(equal_height=True, elem_id="lm-rename-box"):
                title_box = gr.Textbox(show_label=False, max_lines=1, elem_id="lm-title",
                                       placeholder="Chat title", container=False, scale=3)
                rename_btn = gr.Button("Rename", size="sm", elem_id="lm-rename", scale=1,
                                       min_width=70)
            with gr.Row(elem_id="lm-export-box"):
                export_md = gr.Button("Export .md", size="sm", elem_id="lm-export-md")
                export_json = gr.Button("Export .json", size="sm", elem_id="lm-export-json")
            with gr.Accordion("Delete this chat", open=False, elem_id="lm-delete-box"):
                gr.Markdown("Deletes its messages for good, including from memory.")
                delete_btn = gr.Button("Delete permanently", size="sm", variant="stop",
                                       elem_id="lm-delete")
        chat = gr.Chatbot(show_label=False, elem_id="lm-chat", scale=1, height="62vh",
                          feedback_options=("Like", "Dislike"), buttons=["copy"], autoscroll=True,
                          editable="user", placeholder="**How can I help?**<br>Your conversations "
                          "are saved and listed on the left.")
        with gr.Row(visible=False, elem_id="lm-versions") as versions_row:
            prev_btn = gr.Button("‹", size="sm", min_width=40, scale=0, elem_id="lm-version-prev")
            version_label = gr.HTML("", elem_id="lm-version-label")
            next_btn = gr.Button("›", size="sm", min_width=40, scale=0, elem_id="lm-version-next")
        with gr.Row(visible=False, elem_id="lm-memory-notice") as memory_row:
            memory_html = gr.HTML("", elem_id="lm-memory-changes")
            memory_open = gr.Button("Open in Memory", size="sm", scale=0, min_width=120,
                                    elem_id="lm-memory-open")
            memory_undo = gr.Button("Undo", size="sm", scale=0, min_width=70, elem_id="lm-memory-undo")
        with gr.Row(equal_height=True):
            box = gr.MultimodalTextbox(show_label=False, placeholder="Message lastmile… (Enter to "
                                       "send; the clip attaches a file to this chat)", scale=8, max_lines=8,
                                       autofocus=True, elem_id="lm-input", container=False,
                                       file_count="multiple", sources=["upload"], submit_btn=False)
            send_btn = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="lm-send")
            stop_btn = gr.Button("■ Stop", variant="stop", scale=1, min_width=90, elem_id="lm-stop",
                                 visible=False)
        with gr.Accordion("Documents this chat may use", open=False, elem_id="lm-scope-box"):
            scope = gr.CheckboxGroup(choices=[], show_label=False, elem_id="lm-scope")
            scope_reset = gr.Button("Back to the default", size="sm", elem_id="lm-scope-default")
        cites = gr.HTML("", elem_id="lm-citations")
        # Files the page kept out of the box as too big (ui.upload_limit).
        kept_box = gr.Textbox(visible="hidden", elem_id=CHAT_FIELD, show_label=False,
                              container=False)
        opened = [session, sessions, title_box, chat, ids, cites, stop_btn]

        def on_load(request: gr.Request) -> tuple[Any, ...]:
            user = identity.viewer(request).user_id
            listed = bot.sessions.list(user)
            session_id = listed[0].session_id if listed else bot.sessions.new(user).session_id
            return self._show(user, session_id)

        @friendly
        def on_new(session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
            user = identity.viewer(request).user_id
            self.leave(user, session_id)
            current = next((s for s in bot.sessions.list(user) if s.session_id == session_id), None)
            if current is None or current.message_count:  # an empty chat is reused
                session_id = bot.sessions.new(user).session_id
            return self._show(user, session_id)  # type: ignore[arg-type]  # not None: an existing session's or a new one

        @friendly
        def on_switch(session_id: str, current: str | None, request: gr.Request) -> tuple[Any, ...]:
            user = identity.viewer(request).user_id
            if current != session_id:
                self.leave(user, current)
            return self._show(user, session_id)

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
            self.leave(user, session_id)
            bot.sessions.delete(session_id, user_id=user)
            drop_attachments(bot, user, session_id)
            gr.Info("Chat deleted.")
            return on_load(request)

        @friendly
        def after_turn(session_id: str, request: gr.Request) -> tuple[Any, str]:
            return self._sidebar(identity.viewer(request).user_id, session_id, select=False)

        def on_send(value: Any, session_id: str | None, kept: str | None,
                    request: gr.Request) -> Iterator[tuple[Any, ...]]:
            # The kept-back field is read once, with the message it came with, then emptied.
            first: Any = "" if kept else gr.skip()
            for out in send(value, session_id, kept_back(kept, max_file_bytes(bot)), request):
                yield (*out, first)
                first = gr.skip()

        def send(value: Any, session_id: str | None, refused: list[str],
                 request: gr.Request) -> Iterator[tuple[Any, ...]]:
            skip = (gr.skip(),) * 5
            if not session_id:
                gr.Warning("The page is still loading; please try again in a moment.")
                yield skip
                return
            user = identity.viewer(request).user_id
            text, files = message_parts(value)
            if not text.strip() and not files and refused:  # only a file that was too big
                gr.Warning(" ".join(f"Not attached — {why}" for why in refused))
                yield skip
                return
            if not text.strip() and not files and self.turns.partial(user, session_id) is not None:
                gr.Warning("Type a message first.")  # nothing to queue
                yield skip
                return
            token = self.turns.claim_or_queue(user, session_id,
                                              Queued(text, tuple(files), tuple(refused)))
            if token is None:  # a reply is streaming: this one waits, shown as queued
                partial = self.turns.partial(user, session_id)
                rows = self._rows(user, session_id)[0]
                live = [{"role": "assistant", "content": partial or views.TYPING}] \
                    if partial is not None else []
                yield (EMPTY_BOX, [*rows, *live, *self._queued(user, session_id)],
                       gr.skip(), gr.skip(), gr.skip())
                return
            yield from self._run(user, session_id, token, lambda: bot.stream(
                message_text(text, files), session_id=session_id, user_id=user), files,
                clear_box=True, refused=refused)

        def busy(user: str, session_id: str) -> object | None:
            token = self.turns.claim(user, session_id)
            if token is None:
                gr.Warning("A reply is still being written: wait for it or press Stop first.")
            return token

        def on_retry(session_id: str, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            user = identity.viewer(request).user_id
            if (token := busy(user, session_id)) is None:
                yield (gr.skip(),) * 5
                return
            yield from self._run(user, session_id, token, lambda: bot.sessions.regenerate(
                session_id, user_id=user), [], clear_box=False)

        def on_edit(session_id: str, shown: list[list[Any]], data: gr.EditData,
                    request: gr.Request) -> Iterator[tuple[Any, ...]]:
            user = identity.viewer(request).user_id
            index = data.index if isinstance(data.index, int) else data.index[0]
            user_rows = [i for i, (mid, role) in enumerate(shown) if role == "user"]
            if not user_rows or index != user_rows[-1]:
                gr.Warning("Only your last message can be edited.")
                chat, _, _ = self._view(user, session_id)
                yield gr.skip(), chat, gr.skip(), gr.skip(), gr.skip()
                return
            if (token := busy(user, session_id)) is None:
                yield (gr.skip(),) * 5
                return
            yield from self._run(user, session_id, token, lambda: bot.sessions.edit_and_resend(
                str(data.value), session_id=session_id, user_id=user), [], clear_box=False)

        @friendly
        def on_stop(session_id: str | None, request: gr.Request) -> None:
            self.stop(identity.viewer(request).user_id, session_id)

        @friendly
        def on_like(shown: list[list[Any]], data: gr.LikeData, request: gr.Request) -> None:
            user = identity.viewer(request).user_id
            index = data.index if isinstance(data.index, int) else data.index[0]
            if 0 <= index < len(shown) and shown[index][1] == "assistant":
                value = 1 if data.liked is True else -1 if data.liked is False else 0
                bot.sessions.feedback(shown[index][0], value, user_id=user)

        from ui.chat_extras import Extras

        extras = Extras(self, session, ids, chat, cites)
        extras.bind_memory(memory_row, memory_html)
        after = extras.after_turn_outputs(versions_row, version_label, scope, memory_row, memory_html)
        turn_out = [box, chat, ids, cites, stop_btn]
        turns: list[Any] = []
        for trigger in (box.submit, send_btn.click):
            turn = trigger(on_send, [box, session, kept_box], [*turn_out, kept_box],
                           api_visibility="private",
                           show_progress="minimal", trigger_mode="multiple")
            turn.then(after_turn, [session], [sessions, title_box], **QUIET).then(
                *after, **QUIET).then(*extras.memory_event(), **QUIET)
            turns.append(turn)
        for event in (chat.retry(on_retry, [session], turn_out, api_visibility="private"),
                      chat.edit(on_edit, [session, ids], turn_out, api_visibility="private")):
            event.then(*after, **QUIET)
            turns.append(event)
        stop_btn.click(on_stop, [session], None, concurrency_limit=None, **QUIET)
        chat.like(on_like, [ids], None, **QUIET)
        # Leaving a chat stops its reply (stored, marked stopped) so it can't stream into
        # the chat now on screen; what was queued for it is handed back as a warning.
        new_btn.click(on_new, [session], opened, cancels=turns, **QUIET)
        sessions.input(on_switch, [sessions, session], opened, cancels=turns, **QUIET)
        delete_btn.click(on_delete, [session], opened, cancels=turns, **QUIET)
        session.change(*after, **QUIET)  # page load, new chat, switch, delete: pager and picker
        for trigger in (title_box.submit, rename_btn.click):
            trigger(on_rename, [session, title_box], [sessions, title_box], **QUIET)
        extras.wire_search(search_box, sessions)
        extras.wire_export(export_md, export_json)
        extras.wire_versions(prev_btn, next_btn, versions_row, version_label)
        extras.wire_scope(scope, scope_reset)
        extras.wire_memory(memory_row, memory_html, memory_open, memory_undo)
        return on_load, opened


#: The mark under a message that waits for the reply streaming before it.
QUEUED_MARK = '<span class="lm-queued">⏳ queued — sent when the reply above is done</span>'
EMPTY_BOX: dict[str, Any] = {"text": "", "files": []}


def message_parts(value: Any) -> tuple[str, list[Any]]:
    """(text, files) of the input box's value (a dict from the multimodal box; a plain
    string from API callers)."""
    if isinstance(value, dict):
        return str(value.get("text") or ""), list(value.get("files") or [])
    return ("" if value is None else str(value)), []


def message_text(text: str, files: Sequence[Any]) -> str:
    """A message that is only attachments still says something to the model."""
    if text.strip() or not files:
        return text
    return "Please look at the file I attached."


def drop_attachments(bot: Assistant, user_id: str, session_id: str) -> int:
    """A deleted chat takes the files attached in it along (their sources and chunks)."""
    from memory.chats import attached_collection

    docs: Any = bot.documents
    if docs is None or not hasattr(docs, "sources"):
        return 0
    mine = [s.id for s in docs.sources(user_id)
            if s.collection == attached_collection(session_id) and not s.shared]
    dropped = sum(bool(docs.delete_source(user_id, source_id)) for source_id in mine)
    from ui.chat_attach import chat_folder

    shutil.rmtree(chat_folder(Path(bot.settings.data_dir), user_id, session_id), ignore_errors=True)
    return dropped


def with_note(messages: list[dict[str, str]], note: str) -> list[dict[str, str]]:
    """The attachment note under the last user message (shown, never stored)."""
    if not note:
        return messages
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last is None:
        return messages
    out = list(messages)
    lines = "".join(f'<div class="lm-attach-note">{html.escape(line)}</div>'
                    for line in note.split("\n\n"))
    out[last] = {**out[last], "content": f"{out[last]['content']}\n\n{lines}"}
    return out
