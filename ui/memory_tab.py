"""The Memory tab: what the assistant remembers about the signed-in user, where each
fact came from, and the controls to correct it, forget it or take it home as JSON.

Everything goes through the people API on ``Assistant`` (``facts``, ``edit_fact``,
``forget``, ``fact_sources``, ``session_summary``) with the viewer's own user id, so
another user's fact id is simply not found.

The export never touches the disk: the JSON goes to the browser in the event's reply and
is saved there from memory (a Blob). A ``DownloadButton`` needs a file, which Gradio
then copies into its cache, where the user's fact history would outlive the download.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

import gradio as gr
import pandas as pd

from assistant.orchestrator import Assistant
from ui.chat_tab import QUIET, friendly
from ui.identity import Identity

__all__ = ["build_memory", "export_json", "facts_frame", "picked_id"]

COLUMNS = ["id", "fact", "status", "confidence", "since", "until", "from messages"]
ERASED = "(forgotten: text erased)"
#: Saves the export (the hidden box's JSON) as a file from browser memory, then clears it.
SAVE_JS = """(text) => {
  if (!text) { return ""; }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], {type: "application/json"}));
  link.download = "lastmile-facts.json";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  return "";
}"""


def picked_id(value: Any) -> int | None:
    """The row id in an id box (typed, picked, or sent by an API client), or None."""
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and 0 < number < 2**63 else None


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


def facts_frame(facts: list[Any]) -> pd.DataFrame:
    rows = [{"id": f.id, "fact": f.text or (ERASED if f.text_sha256 else ""), "status": f.status,
             "confidence": round(f.confidence, 2),
             "since": _day(f.valid_from), "until": _day(f.valid_to),
             "from messages": ", ".join(str(i) for i in f.source_ids)} for f in facts]
    return pd.DataFrame(rows, columns=COLUMNS)


def _sources_html(messages: list[Any], titles: dict[str, str] | None = None) -> str:
    """Each source message with its date and the chat it was said in, named by the chat's
    title (``titles``: session id → title), not its internal id."""
    if not messages:
        return "<p>No source messages (they may have been deleted).</p>"
    titles = titles or {}
    items = "".join(f"<li><small>{_day(m.created_at)} · in the chat “"
                    f"{html.escape(titles.get(m.session_id) or 'a deleted chat')}”"
                    f"</small><blockquote>{html.escape(m.content)}</blockquote></li>" for m in messages)
    return f'<ul class="lm-sources">{items}</ul>'


def _summary_md(record: Any) -> str:
    if record is None:
        return "_No summary yet: this chat still fits in the model's window._"
    return (f"{record.text}\n\n<small>covers messages {record.from_id}–{record.to_id} · "
            f"version {record.version} · {record.method}</small>")


def export_json(bot: Assistant, user: str) -> str:
    """Every version of every fact of ``user`` as JSON text (never written to a file)."""
    facts = [dataclasses.asdict(f) for f in bot.facts.list(user, include_history=True)]
    return json.dumps({"user_id": user, "facts": facts}, indent=2, default=str)


def build_memory(bot: Assistant, identity: Identity, session: gr.State) -> gr.Tab:
    with gr.Tab("Memory", id="memory", visible=False, elem_id="lm-tab-memory") as tab:
        gr.Markdown("What lastmile remembers about you. Open a fact to see the messages it "
                    "came from; correct it or make lastmile forget it.")
        history = gr.Checkbox(label="Show history (superseded and forgotten versions)",
                              elem_id="lm-facts-history")
        table = gr.Dataframe(pd.DataFrame(columns=COLUMNS), interactive=False, wrap=True,
                             elem_id="lm-facts", label="Facts")
        with gr.Row():
            # A text box, not gr.Number: that shows "0" until a fact is picked.
            chosen = gr.Textbox(label="Fact id", max_lines=1, elem_id="lm-fact-id", scale=1,
                                placeholder="click a fact above")
            text = gr.Textbox(label="Corrected text", elem_id="lm-fact-text", scale=4)
        with gr.Row():
            save = gr.Button("Save correction", elem_id="lm-fact-save")
            forget = gr.Button("Forget this fact", variant="stop", elem_id="lm-fact-forget")
            export = gr.Button("Export all as JSON", elem_id="lm-facts-export")
        exported = gr.Textbox(visible="hidden", elem_id="lm-facts-export-data", show_label=False)
        sources = gr.HTML(elem_id="lm-fact-sources")
        gr.Markdown("### Summary of the open chat")
        summary = gr.Markdown(elem_id="lm-summary")

        def listing(user: str, with_history: bool, session_id: str | None) -> tuple[Any, ...]:
            facts = bot.facts.list(user, include_history=with_history)
            record = bot.sessions.summary(session_id, user_id=user) if session_id else None
            return facts_frame(facts), _summary_md(record)

        @friendly
        def on_show(with_history: bool, session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
            return listing(identity.require(request, "user").user_id, with_history, session_id)

        @friendly
        def on_select(frame: pd.DataFrame, evt: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
            user = identity.require(request, "user").user_id
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            fact_id = int(frame.iloc[row]["id"])
            titles = {s.session_id: s.title for s in bot.sessions.list(user)}
            return (fact_id, str(frame.iloc[row]["fact"]),
                    _sources_html(bot.facts.sources(user, fact_id), titles))

        @friendly
        def on_save(picked: Any, new_text: str, with_history: bool, session_id: str | None,
                    request: gr.Request) -> tuple[Any, ...]:
            user = identity.require(request, "user").user_id
            fact_id = picked_id(picked)
            if not fact_id or not new_text.strip():
                raise gr.Error("Pick a fact and type its corrected text first.")
            bot.facts.edit(user, int(fact_id), new_text.strip())
            gr.Info("Saved. The old version stays in the history.")
            return listing(user, with_history, session_id)

        @friendly
        def on_forget(picked: Any, with_history: bool, session_id: str | None,
                      request: gr.Request) -> tuple[Any, ...]:
            user = identity.require(request, "user").user_id
            fact_id = picked_id(picked)
            if not fact_id:
                raise gr.Error("Pick a fact to forget first.")
            result = bot.facts.forget(user, int(fact_id))
            gr.Info(getattr(result, "message", None) or "Forgotten.")
            return listing(user, with_history, session_id)

        @friendly
        def on_export(request: gr.Request) -> str:
            return export_json(bot, identity.require(request, "user").user_id)

        shown = [table, summary]
        for event in (tab.select, history.change):
            event(on_show, [history, session], shown, **QUIET)
        table.select(on_select, [table], [chosen, text, sources], **QUIET)
        save.click(on_save, [chosen, text, history, session], shown, **QUIET)
        forget.click(on_forget, [chosen, history, session], shown, **QUIET)
        export.click(on_export, None, [exported], **QUIET).then(
            None, [exported], [exported], js=SAVE_JS, **QUIET)
    return tab
