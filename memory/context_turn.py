"""One turn's prompt from the Assistant's parts: the glue between the orchestrator and
``assistant.context``, so the orchestrator only makes one call.

It plans the split for the model, fetches the summary, documents (through the guards'
``after_retrieval``) and memories within their budgets, assembles the prompt, records
what went in (the report; ``ctx.notes["sources"]`` for the citation guard;
``ctx.notes["snippets"]`` for retrieval-only answers) and schedules a summary fold for
turns that left the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage

from assistant.context import Blocks, ContextReport, assemble_context
from memory.context_split import plan_split

__all__ = ["HISTORY_SCAN", "render_sources", "turn_context"]

HISTORY_SCAN = 200  # newest messages considered for the window; plenty for any budget
SOURCES_HEADER = "Sources (cite as [n]):"


def render_sources(sources: Sequence[Any], token_budget: int, count: Callable[[str], int]) -> str:
    """A numbered sources block, keeping each source's own id (so citations still
    resolve after a guard dropped some); the last sources go first when over budget."""
    kept = list(sources)
    while kept:
        lines = [SOURCES_HEADER]
        for ref in kept:
            where = ", ".join(x for x in (ref.path, f"p. {ref.page}" if ref.page else "") if x)
            lines.append(f"[{ref.id}] {ref.title}" + (f" ({where})" if where else ""))
            lines.append(" ".join(ref.text.split()))
        text = "\n".join(lines)
        if count(text) <= token_budget:
            return text
        kept.pop()
    return ""


def turn_context(assistant: Any, ctx: Any, model: Any,
                 query: str) -> tuple[list[BaseMessage], ContextReport]:
    """The prompt for ``query`` in ``ctx``'s session, within ``model``'s budget."""
    settings = assistant.settings
    summaries = getattr(assistant, "summaries", None)
    documents = getattr(assistant, "documents", None)

    def count_text(text: str) -> int:
        return model.count_tokens([SystemMessage(content=text)])

    split = plan_split(settings, model.context_window, count_text(settings.system_prompt),
                       summary=summaries is not None, memory=assistant.memory is not None,
                       documents=documents is not None)
    seen: dict[str, Any] = {}

    def summary_block(budget: int) -> str:
        text, record = summaries.block(ctx.user_id, ctx.session_id, budget, count_text)
        seen["summary"] = record
        return text

    def documents_block(budget: int) -> str:
        grounding = documents.retrieve(ctx.user_id, query, token_budget=budget,
                                       count_tokens=count_text)
        found = list(grounding.sources)
        sources = assistant.guards.after_retrieval(ctx, list(found)) if found else []
        text = grounding.text if sources == found else render_sources(sources, budget, count_text)
        seen["sources"] = sources if text else []
        return text

    def memory_block(budget: int, exclude: Collection[int]) -> tuple[str, list[int]]:
        recalled = assistant.memory.recall(ctx.user_id, query, token_budget=budget,
                                           exclude=exclude, count_tokens=count_text)
        seen["memories"] = list(getattr(recalled, "items", []) or []) if recalled.text else []
        return recalled.text, list(recalled.message_ids)

    history = assistant.store.recent(ctx.user_id, ctx.session_id, HISTORY_SCAN)
    messages, report = assemble_context(
        settings.system_prompt, history, split=split, count=model.count_tokens,
        blocks=Blocks(summary=summary_block if summaries else None,
                      documents=documents_block if documents else None,
                      memory=memory_block if assistant.memory else None))
    record, sources = seen.get("summary"), seen.get("sources", [])
    if record is not None and report.summary_tokens:
        report = dataclasses.replace(report, summary_from_id=record.from_id,
                                     summary_to_id=record.to_id, summary_version=record.version)
    if sources:
        report = dataclasses.replace(report, document_ids=[s.chunk_id for s in sources])
    ctx.notes["sources"] = {ref.id: ref for ref in sources}
    ctx.notes["snippets"] = seen.get("memories", []) + [
        {"id": ref.id, "text": ref.text, "source": ref.title or ref.path, "date": None}
        for ref in sources]
    if summaries is not None and report.dropped_messages and report.message_ids:
        start = min(report.message_ids)
        dropped = [m.id for m in history if m.id < start]
        if dropped:
            summaries.schedule(getattr(assistant, "jobs", None), ctx.user_id, ctx.session_id,
                               max(dropped), record.to_id if record else None)
    return messages, report
