"""The chat's extras, wired beside the turn events of ``ui.chat_tab``: search across
the viewer's chats, export of the open chat, switching between regenerated versions,
the collections the chat may use, and the "memory updated" notice with its undo.

Each handler resolves the viewer from the request and goes through ``bot.chats`` /
``bot.facts`` with that id, so none of them can reach another user's chats or facts.
An export never touches the disk: the text goes to the browser in the event's reply
and is saved there from memory (as the Memory tab's export does).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import gradio as gr

from memory.chats import ATTACHED_PREFIX, attached_collection, in_scope
from ui.chat_memory import OPEN_MEMORY_JS, notice_html, undo, wait_for_changes

if TYPE_CHECKING:
    from ui.chat_tab import ChatTab

__all__ = ["CHAT_CSS", "SAVE_JS", "Extras"]

#: The look of the chat's extras (appended to ``ui.views.CSS`` by ``ui.app``).
CHAT_CSS = """
.lm-queued { color: var(--body-text-color-subdued); font-size: .8rem; font-style: italic; }
.lm-attach-note { font-size: .8rem; color: var(--body-text-color-subdued); margin-top: .25rem; }
#lm-memory-notice { border: 1px solid var(--color-accent); border-radius: var(--radius-lg);
  padding: .3rem .6rem; align-items: center; background: var(--color-accent-soft); }
.lm-mem-notice ul { margin: .2rem 0 0 1rem; padding: 0; font-size: .85rem; }
.lm-mem-head { font-weight: 600; font-size: .85rem; }
.lm-mem-was { color: var(--body-text-color-subdued); }
#lm-facts tr.lm-linked td { background: var(--color-accent-soft); }
#lm-versions { align-items: center; gap: .3rem; justify-content: flex-end; }
#lm-versions .lm-version { font-size: .8rem; font-family: var(--font-mono); }
#lm-reconnect { position: fixed; top: 0; left: 0; right: 0; z-index: 1000; padding: .5rem 1rem;
  background: #b45309; color: white; text-align: center; font-weight: 600; }
"""

#: Saves ``{"name", "type", "text"}`` (the hidden box's JSON) as a file from browser memory.
SAVE_JS = """(payload) => {
  if (!payload) { return ""; }
  const file = JSON.parse(payload);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([file.text], {type: file.type}));
  link.download = file.name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  return "";
}"""


class Extras:
    """Search, export, versions, scope and memory notice for one ``ChatTab``."""

    def __init__(self, tab: ChatTab, session: Any, ids: Any, chat: Any, cites: Any) -> None:
        from ui.chat_tab import QUIET, friendly

        self.tab, self.bot, self.identity = tab, tab.bot, tab.identity
        self.session, self.ids, self.chat, self.cites = session, ids, chat, cites
        self.quiet, self.friendly = QUIET, friendly
        self.changes = gr.State([])
        self.exported = gr.Textbox(visible="hidden", elem_id="lm-chat-export-data", show_label=False)

    def _user(self, request: gr.Request) -> str:
        return self.identity.viewer(request).user_id

    # after every turn or switch: versions, scope, memory notice hidden ---------------------
    def _versions(self, user: str, session_id: str) -> tuple[Any, str]:
        found = self.bot.chats.versions(session_id, user_id=user)
        label = (f'<span class="lm-version" title="regenerated versions of this reply">'
                 f"{found.index} / {len(found.ids)}</span>")
        return gr.Row(visible=len(found.ids) > 1), label

    def _scope(self, user: str, session_id: str) -> Any:
        docs: Any = self.bot.documents
        if docs is None or not hasattr(docs, "collections"):
            return gr.CheckboxGroup(choices=[], value=[])
        names = sorted(set(docs.collections(user)) | set(docs.collections(None)))
        titles = {s.session_id: s.title for s in self.bot.sessions.list(user)}

        def label(name: str) -> str:
            if name == attached_collection(session_id):
                return "📎 files attached in this chat"
            if name.startswith(ATTACHED_PREFIX):
                return f"📎 files of the chat “{titles.get(name[len(ATTACHED_PREFIX):], 'deleted')}”"
            return name

        chosen = self.bot.chats.scope(session_id, user_id=user)
        return gr.CheckboxGroup(choices=[(label(n), n) for n in names],
                                value=[n for n in names if in_scope(n, chosen, session_id)])

    def after_turn_outputs(self, versions_row: Any, version_label: Any, scope: Any,
                           memory_row: Any, memory_html: Any) -> tuple[Any, list[Any], list[Any]]:
        """``(fn, inputs, outputs)`` for a ``.then`` after a turn or a chat switch."""

        @self.friendly
        def refresh(session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
            if not session_id:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            user = self._user(request)
            return (*self._versions(user, session_id), self._scope(user, session_id),
                    gr.Row(visible=False))

        return refresh, [self.session], [versions_row, version_label, scope, memory_row]

    # search ----------------------------------------------------------------------------
    def wire_search(self, search_box: Any, sessions: Any) -> None:
        @self.friendly
        def on_search(query: str, session_id: str | None, request: gr.Request) -> Any:
            user = self._user(request)
            if not (query or "").strip():
                listed = self.bot.sessions.list(user)
                return gr.Radio(choices=[(s.title, s.session_id) for s in listed], value=session_id)
            hits = self.bot.chats.search(user, query)
            choices = [(f"{h.session.title} — {h.snippet}" if h.snippet != h.session.title
                        else h.session.title, h.session.session_id) for h in hits]
            if not choices:
                gr.Info("No chat of yours matches that.")
            shown = session_id if any(sid == session_id for _, sid in choices) else None
            return gr.Radio(choices=choices, value=shown)

        search_box.change(on_search, [search_box, self.session], [sessions],
                         trigger_mode="always_last", **self.quiet)
        search_box.submit(on_search, [search_box, self.session], [sessions], **self.quiet)

    # export ----------------------------------------------------------------------------
    def wire_export(self, markdown_btn: Any, json_btn: Any) -> None:
        def exporter(kind: str) -> Any:
            @self.friendly
            def on_export(session_id: str | None, request: gr.Request) -> str:
                if not session_id:
                    raise gr.Error("Open a chat first.")
                user = self._user(request)
                if kind == "md":
                    text, mime = self.bot.chats.export_markdown(session_id, user_id=user), "text/markdown"
                else:
                    text, mime = self.bot.chats.export_json(session_id, user_id=user), "application/json"
                return json.dumps({"name": f"lastmile-chat-{session_id}.{kind}", "type": mime,
                                   "text": text})
            return on_export

        for button, kind in ((markdown_btn, "md"), (json_btn, "json")):
            button.click(exporter(kind), [self.session], [self.exported], **self.quiet).then(
                None, [self.exported], [self.exported], js=SAVE_JS, **self.quiet)

    # versions --------------------------------------------------------------------------
    def wire_versions(self, prev_btn: Any, next_btn: Any, versions_row: Any, version_label: Any) -> None:
        def switcher(step: int) -> Any:
            @self.friendly
            def on_version(session_id: str, request: gr.Request) -> tuple[Any, ...]:
                user = self._user(request)
                if self.tab.turns.partial(user, session_id) is not None:
                    raise gr.Error("Wait for the reply to finish (or stop it) first.")
                found = self.bot.chats.versions(session_id, user_id=user)
                at = found.index - 1 + step
                if found.ids and 0 <= at < len(found.ids):
                    self.bot.chats.choose_version(session_id, found.ids[at], user_id=user)
                chat, ids, cites = self.tab._view(user, session_id)
                return (chat, ids, cites, *self._versions(user, session_id))
            return on_version

        outputs = [self.chat, self.ids, self.cites, versions_row, version_label]
        prev_btn.click(switcher(-1), [self.session], outputs, **self.quiet)
        next_btn.click(switcher(1), [self.session], outputs, **self.quiet)

    # scope -----------------------------------------------------------------------------
    def wire_scope(self, scope: Any, reset: Any) -> None:
        @self.friendly
        def on_scope(chosen: list[str], session_id: str, request: gr.Request) -> Any:
            user = self._user(request)
            self.bot.chats.set_scope(session_id, list(chosen or []), user_id=user)
            return self._scope(user, session_id)

        @self.friendly
        def on_reset(session_id: str, request: gr.Request) -> Any:
            user = self._user(request)
            self.bot.chats.set_scope(session_id, None, user_id=user)
            return self._scope(user, session_id)

        scope.input(on_scope, [scope, self.session], [scope], **self.quiet)
        reset.click(on_reset, [self.session], [scope], **self.quiet)

    # memory notice ---------------------------------------------------------------------
    def memory_event(self) -> tuple[Any, list[Any], list[Any]]:
        """``(fn, inputs, outputs)``: after a turn, wait briefly for what the facts job
        made of its message and show it (nothing when nothing changed)."""
        return self._on_memory, [self.session], [self._memory_row, self._memory_html, self.changes]

    def wire_memory(self, memory_row: Any, memory_html: Any, open_btn: Any, undo_btn: Any) -> None:
        @self.friendly
        def on_undo(changes: list[dict[str, Any]], request: gr.Request) -> tuple[Any, ...]:
            gr.Info(undo(self.bot, self._user(request), changes or []))
            return gr.Row(visible=False), "", []

        open_btn.click(None, None, None, js=OPEN_MEMORY_JS, **self.quiet)
        undo_btn.click(on_undo, [self.changes], [memory_row, memory_html, self.changes], **self.quiet)

    def bind_memory(self, memory_row: Any, memory_html: Any) -> None:
        self._memory_row, self._memory_html = memory_row, memory_html

    def _on_memory(self, session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        try:
            user = self._user(request)
            if not session_id:
                return gr.skip(), gr.skip(), gr.skip()
            history = self.bot.sessions.history(session_id, user_id=user)
            last = next((m for m in reversed(history) if m.role == "user"), None)
            changes = wait_for_changes(self.bot, user, last.id) if last is not None else []
        except Exception:  # noqa: BLE001 - a notice that cannot be read is no notice; the turn is done
            return gr.skip(), gr.skip(), gr.skip()
        if not changes:
            return gr.skip(), gr.skip(), gr.skip()
        kept = [{"op": c.op, "fact_id": c.fact_id, "text": c.text, "previous_text": c.previous_text,
                 "undoable": c.undoable, "key": c.key} for c in changes]
        return gr.Row(visible=True), notice_html(changes), kept
