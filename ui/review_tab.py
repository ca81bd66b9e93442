"""The Review tab (reviewer role): the queue of answers and memory writes lastmile could
not trust, each with its context, and approve / edit / reject in one click each.

Decisions go through ``memory.review.ReviewQueue.decide`` with the reviewer's id, which
writes the audit row; the user's chat shows the outcome on its next refresh.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import pandas as pd

from assistant.orchestrator import Assistant
from ui import views
from ui.chat_tab import QUIET, friendly
from ui.identity import Identity

__all__ = ["build_review", "queue_frame"]

COLUMNS = ["id", "kind", "user", "reason", "confidence", "answer"]


def queue_frame(items: list[Any]) -> pd.DataFrame:
    rows = [{"id": i.id, "kind": i.kind, "user": i.user_id, "reason": i.reason,
             "confidence": "" if i.confidence is None else round(i.confidence, 2),
             "answer": i.content[:160]} for i in items]
    return pd.DataFrame(rows, columns=COLUMNS)


def _context_html(item: Any) -> str:
    question = f"<p><b>Question</b></p><blockquote>{html.escape(item.question)}</blockquote>" \
        if item.question else ""
    details = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))[:300]}</li>"
                      for k, v in (item.details or {}).items() if k != "citations")
    sources = views.citations_html((item.details or {}).get("citations"))  # verdict per sentence
    return (f'<div class="lm-review-item" data-id="{item.id}">{question}<p><b>Answer under review'
            f"</b> ({html.escape(item.reason)})</p><blockquote>{html.escape(item.content)}</blockquote>"
            f"<ul>{details}</ul>{sources}</div>")


def build_review(bot: Assistant, identity: Identity) -> gr.Tab:
    with gr.Tab("Review", id="review", visible=False, elem_id="lm-tab-review") as tab:
        gr.Markdown("Answers and memory writes waiting for a human. Open one, then approve, "
                    "correct or reject it; every decision is recorded with your name.")
        table = gr.Dataframe(pd.DataFrame(columns=COLUMNS), interactive=False, wrap=True,
                             elem_id="lm-review-queue", label="Pending")
        chosen = gr.State(None)
        context = gr.HTML(elem_id="lm-review-context")
        edited = gr.Textbox(label="Corrected answer (for Edit)", lines=3, elem_id="lm-review-text")
        note = gr.Textbox(label="Note for the audit log (optional)", max_lines=1,
                          elem_id="lm-review-note")
        with gr.Row():
            approve = gr.Button("Approve", variant="primary", elem_id="lm-review-approve")
            edit = gr.Button("Save edit", elem_id="lm-review-edit")
            reject = gr.Button("Reject", variant="stop", elem_id="lm-review-reject")

        def queue() -> pd.DataFrame:
            return queue_frame(bot.review.pending(limit=200)) if bot.review is not None else \
                queue_frame([])

        @friendly
        def on_show(request: gr.Request) -> pd.DataFrame:
            identity.require(request, "reviewer")
            return queue()

        @friendly
        def on_select(frame: pd.DataFrame, evt: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
            identity.require(request, "reviewer")
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            item = bot.review.get(int(frame.iloc[row]["id"]))  # type: ignore[union-attr]  # a row to select means a queue
            return item.id, _context_html(item), item.content

        def decider(decision: str) -> Any:
            @friendly
            def decide(item_id: int | None, text: str, why: str, request: gr.Request) -> tuple[Any, ...]:
                viewer = identity.require(request, "reviewer")
                if item_id is None or bot.review is None:
                    raise gr.Error("Open an item from the queue first.")
                try:
                    bot.review.decide(item_id, decision, reviewer_id=viewer.user_id,
                                      note=why.strip() or None,
                                      edited_text=text if decision == "edit" else None)
                except ValueError as exc:
                    raise gr.Error(str(exc)) from exc
                gr.Info(f"Item {item_id}: {decision} recorded.")
                return queue(), None, "", "", ""
            return decide

        tab.select(on_show, None, [table], **QUIET)
        table.select(on_select, [table], [chosen, context, edited], **QUIET)
        outputs = [table, chosen, context, edited, note]
        approve.click(decider("approve"), [chosen, edited, note], outputs, **QUIET)
        edit.click(decider("edit"), [chosen, edited, note], outputs, **QUIET)
        reject.click(decider("reject"), [chosen, edited, note], outputs, **QUIET)
    return tab
