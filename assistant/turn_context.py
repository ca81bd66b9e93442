"""One turn's prompt from the Assistant's parts: the glue between the orchestrator and
``assistant.context``, so the orchestrator only makes one call. It composes memory's
pieces (split plan, summary, documents, recalled memories), so it lives in the
assistant layer, above ``memory/`` (it was ``memory/context_turn.py``).

It plans the split for the model, fetches the summary, documents and memories within
their budgets — documents *and* recalled memories (episodic turns, facts) both pass the
guards' ``after_retrieval`` (the session summary too, line by line), so a quarantined
item never reaches the prompt from any side — assembles the prompt, records what went in (the
report; ``ctx.sources`` for the citation guard; ``ctx.snippets`` for retrieval-only answers) and
schedules a summary fold for turns that left the window.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage

from assistant import telemetry
from assistant.context import Blocks, ContextReport, assemble_context, with_preamble
from memory.context_split import plan_split
from memory.sources_block import render_budgeted

__all__ = ["HISTORY_SCAN", "WITHHELD", "RecalledItem", "guard_memories", "guard_summary",
           "render_sources", "turn_context"]

HISTORY_SCAN = 200  # newest messages considered for the window; plenty for any budget
#: Stands in for a recalled memory a guard quarantined (its text never reaches the prompt).
WITHHELD = "[withheld by a safety check]"
#: One line of a memory block: ``- [msg-12 | 1 May 2026] User: …`` / ``- [fact-3 | …] …``.
_ENTRY = re.compile(r"^(?P<lead>\s*(?:-\s*)?\[(?P<id>[a-z]+-\d+)(?: \|[^\]\n]*)?\] ?)(?P<body>.*)$",
                    re.MULTILINE)


def render_sources(sources: Sequence[Any], token_budget: int, count: Callable[[str], int], *,
                   withheld: int = 0) -> str:
    """The numbered sources block (with its "reference material, not instructions"
    preamble), keeping each source's own id so citations still resolve after a guard
    dropped some; the last sources go first when over budget."""
    return render_budgeted(sources, token_budget, count, withheld=withheld)


@dataclasses.dataclass(frozen=True)
class RecalledItem:
    """One recalled memory as the guards see it (``memory_id``: ``msg-12``, ``fact-3``)."""

    memory_id: str
    text: str
    source: str = "memory"
    date: str | None = None


def guard_memories(guards: Any, ctx: Any, text: str,
                   snippets: Sequence[dict]) -> tuple[str, list[dict]]:
    """The memory block and its snippets after ``guards.after_retrieval``: a quarantined
    memory's line shows ``WITHHELD`` instead of its text, a rewritten one (e.g. redacted)
    its new text. Lines the snippets do not describe are guarded too."""
    items = [RecalledItem(str(s.get("id")), str(s.get("text") or ""), str(s.get("source") or "memory"),
                          s.get("date")) for s in snippets]
    known = {it.memory_id for it in items}
    for m in _ENTRY.finditer(text):
        if m["id"] not in known:
            known.add(m["id"])
            items.append(RecalledItem(m["id"], m["body"]))
    kept = guards.after_retrieval(ctx, list(items))
    if kept == items:
        return text, list(snippets)
    now = {k.memory_id: k for k in kept if isinstance(k, RecalledItem)}
    dropped = [it for it in items if it.memory_id not in now]

    def line(m: re.Match[str]) -> str:
        item = now.get(m["id"])
        if item is None:
            return m["lead"] + WITHHELD
        before = next(it for it in items if it.memory_id == m["id"])
        return m["lead"] + (" ".join(item.text.split()) if item.text != before.text else m["body"])

    text = _ENTRY.sub(line, text)
    for item in dropped:  # never left raw, whatever shape the block has
        for form in {item.text.strip(), " ".join(item.text.split())}:
            if len(form) >= 8:
                text = text.replace(form, WITHHELD)
    out = [{**s, "text": now[str(s.get("id"))].text} for s in snippets if str(s.get("id")) in now]
    return text, out


def guard_summary(guards: Any, ctx: Any, text: str, label: str) -> str:
    """The session summary after ``guards.after_retrieval``, line by line (it is drawn
    from earlier turns, so a flagged turn could come back through it): a quarantined line
    shows ``WITHHELD``, a rewritten one its new text; the header line is left as it is."""
    head, *lines = text.split("\n")
    items = [RecalledItem(f"{label}-{i}", line) for i, line in enumerate(lines, 1) if line.strip()]
    kept = guards.after_retrieval(ctx, list(items))
    if kept == items:
        return text
    now = {k.memory_id: k.text for k in kept if isinstance(k, RecalledItem)}
    out = [now.get(f"{label}-{i}", "- " + WITHHELD) if line.strip() else line
           for i, line in enumerate(lines, 1)]
    return "\n".join([head, *out])


def turn_context(assistant: Any, ctx: Any, model: Any,
                 query: str) -> tuple[list[BaseMessage], ContextReport]:
    """The prompt for ``query`` in ``ctx``'s session, within ``model``'s budget."""
    settings = assistant.settings
    summaries = getattr(assistant, "summaries", None)
    documents = getattr(assistant, "documents", None)

    def count_text(text: str) -> int:
        return model.count_tokens([SystemMessage(content=text)])

    retrieves = documents is not None or assistant.memory is not None  # then the preamble too
    system = with_preamble(settings.system_prompt) if retrieves else settings.system_prompt
    split = plan_split(settings, model.context_window, count_text(system),
                       summary=summaries is not None, memory=assistant.memory is not None,
                       documents=documents is not None)
    seen: dict[str, Any] = {}

    def summary_block(budget: int) -> str:
        assert summaries is not None  # the block is offered only then
        text, record = summaries.block(ctx.user_id, ctx.session_id, budget, count_text)
        seen["summary"] = record
        label = f"summary-{getattr(record, 'version', None) or 0}"
        return guard_summary(assistant.guards, ctx, text, label) if text else text

    def documents_block(budget: int) -> str:
        assert documents is not None  # the block is offered only then
        # A chat's scope (issue 16) reaches a Documents that takes one; others see all.
        scope = ({"collections": ctx.collections, "chat": ctx.session_id}
                 if getattr(documents, "scoped", False) else {})
        grounding = documents.retrieve(ctx.user_id, query, token_budget=budget,
                                       count_tokens=count_text, **scope)
        found = list(grounding.sources)
        sources = assistant.guards.after_retrieval(ctx, list(found)) if found else []
        text = grounding.text if sources == found else render_sources(
            sources, budget, count_text, withheld=max(0, len(found) - len(sources)))
        seen["sources"] = sources if text else []
        return text

    def memory_block(budget: int, exclude: Collection[int]) -> tuple[str, list[int]]:
        recalled = assistant.memory.recall(ctx.user_id, query, token_budget=budget,
                                           exclude=exclude, count_tokens=count_text)
        if not recalled.text:
            seen["memories"] = []
            return "", []
        text, seen["memories"] = guard_memories(assistant.guards, ctx, recalled.text,
                                                list(getattr(recalled, "items", []) or []))
        return text, list(recalled.message_ids)

    history = assistant.store.recent(ctx.user_id, ctx.session_id, HISTORY_SCAN)
    messages, report = assemble_context(
        settings.system_prompt, history, split=split, count=model.count_tokens,
        blocks=Blocks(  # each block fetched in its own span under the context stage
            summary=telemetry.traced(ctx, "summary", summary_block) if summaries else None,
            documents=telemetry.traced(ctx, "documents", documents_block) if documents else None,
            memory=telemetry.traced(ctx, "recall", memory_block) if assistant.memory else None))
    record, sources = seen.get("summary"), seen.get("sources", [])
    if record is not None and report.summary_tokens:
        report = dataclasses.replace(report, summary_from_id=record.from_id,
                                     summary_to_id=record.to_id, summary_version=record.version)
    if sources:
        report = dataclasses.replace(report, document_ids=[s.chunk_id for s in sources])
    ctx.sources = {ref.id: ref for ref in sources}
    ctx.snippets = seen.get("memories", []) + [
        {"id": ref.id, "text": ref.text, "source": ref.title or ref.path, "date": None}
        for ref in sources]
    if summaries is not None and report.dropped_messages and report.message_ids:
        start = min(report.message_ids)
        dropped = [m.id for m in history if m.id < start]
        if dropped:
            summaries.schedule(getattr(assistant, "jobs", None), ctx.user_id, ctx.session_id,
                               max(dropped), record.to_id if record else None)
    return messages, report
