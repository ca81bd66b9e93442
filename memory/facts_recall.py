"""Current facts in the prompt, ahead of episodic snippets, inside one memory budget.

``FactRecall`` renders the user's *valid* facts (each with its fact id, since-date and
source message ids); ``LayeredRecall`` puts that block first and gives what is left of
the budget to the turn memory (``memory.recall.TurnMemory``), keeping the turns behind
forgotten facts out of it as well. Superseded, withdrawn and forgotten facts never
reach a prompt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from assistant.protocols import Recall
from memory.facts import FactInfo, FactMemory
from memory.memblock import approx_tokens, format_date

__all__ = ["FACTS_HEADER", "FactRecall", "LayeredRecall", "RecalledFacts", "render_fact"]

FACTS_HEADER = "Known facts about the user (current; [fact | since | said in]):"


@dataclass(frozen=True)
class RecalledFacts:
    """A memory block, the message ids behind it, and one snippet per item shown."""

    text: str = ""
    message_ids: list[int] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)
    fact_ids: list[int] = field(default_factory=list)


def render_fact(fact: FactInfo) -> str:
    said = ", ".join(f"msg-{i}" for i in fact.source_ids) or "edited"
    return f"- [fact-{fact.id} | since {format_date(fact.valid_from)} | {said}] {fact.text}"


class FactRecall:
    """The user's current facts as a block; with many facts, the ones nearest the query."""

    def __init__(self, facts: FactMemory, *, max_facts: int = 12) -> None:
        self.memory = facts
        self.max_facts = max_facts

    def recall(self, user_id: str, query: str, *, token_budget: int,
               exclude: Collection[int] = (),
               count_tokens: Callable[[str], int] = approx_tokens) -> RecalledFacts:
        if token_budget <= 0:
            return RecalledFacts()
        facts = self.memory.facts(user_id)
        if len(facts) > self.max_facts:
            ranked = [f for f, _ in self.memory.search(user_id, query or "the user", self.max_facts)]
            facts = ranked or facts[-self.max_facts:]
        lines: list[str] = []
        shown: list[FactInfo] = []
        for fact in facts:
            candidate = "\n".join([FACTS_HEADER, *lines, render_fact(fact)])
            if count_tokens(candidate) > token_budget:
                continue  # a shorter fact further down may still fit
            lines.append(render_fact(fact))
            shown.append(fact)
        if not shown:
            return RecalledFacts()
        ids = list(dict.fromkeys(i for f in shown for i in f.source_ids))
        items = [{"id": f"fact-{f.id}", "text": f.text,
                  "source": ", ".join(f"msg-{i}" for i in f.source_ids),
                  "date": f.valid_from.isoformat()} for f in shown]
        return RecalledFacts("\n".join([FACTS_HEADER, *lines]), ids, items, [f.id for f in shown])


_ENTRY = re.compile(r"^\s*(?:-\s*)?\[msg-(\d+)[ |\]].*(?:\n(?!\s*(?:-\s*)?\[)[^\n]*)*", re.MULTILINE)


def _without(recalled: Any, hidden: Collection[int]) -> Any:
    """``recalled`` minus the entries of ``hidden`` messages: the turn memory leaves out
    excluded hits, but a hidden message can still come as a hit's neighbour turn."""
    shown = set(getattr(recalled, "message_ids", None) or [])
    if not recalled.text or not shown & set(hidden):
        return recalled
    text = _ENTRY.sub(lambda m: "" if int(m.group(1)) in hidden else m.group(0), recalled.text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    items = [i for i in getattr(recalled, "items", None) or [] if i.get("id") not in
             {f"msg-{h}" for h in hidden}]
    return RecalledFacts(text if re.search(r"\[msg-\d+", text) else "",
                         [i for i in recalled.message_ids if i not in hidden], items)


class LayeredRecall:
    """Facts first (up to ``facts_share`` of the budget), then episodic memories in
    what is left; both scoped to the user, both inside ``token_budget``."""

    def __init__(self, facts: FactRecall, turns: Recall | None, *, facts_share: float = 0.4) -> None:
        self.facts = facts
        self.turns = turns
        self.facts_share = facts_share

    def recall(self, user_id: str, query: str, *, token_budget: int,
               exclude: Collection[int] = (),
               count_tokens: Callable[[str], int] = approx_tokens) -> RecalledFacts:
        if token_budget <= 0:
            return RecalledFacts()
        share = token_budget if self.turns is None else int(token_budget * self.facts_share)
        known = self.facts.recall(user_id, query, token_budget=share, count_tokens=count_tokens)
        if self.turns is None:
            return known
        used = count_tokens(known.text) + 2 if known.text else 0  # +2: the blank line between
        hidden = self.facts.memory.suppressed_sources(user_id)
        turns = self.turns.recall(user_id, query, token_budget=token_budget - used,
                                  exclude={*exclude, *hidden}, count_tokens=count_tokens)
        turns = _without(turns, hidden)
        text = "\n\n".join(t for t in (known.text, turns.text) if t)
        if turns.text and count_tokens(text) > token_budget:  # tokenizers are not additive
            text, turns = known.text, RecalledFacts()
        return RecalledFacts(
            text, list(dict.fromkeys([*known.message_ids, *turns.message_ids])),
            [*known.items, *(getattr(turns, "items", None) or [])], known.fact_ids)

    def forget_messages(self, user_id: str, message_ids: Collection[int]) -> None:
        """Deleted messages leave recall: out of the turn memory, and the facts drawn
        only from them are forgotten."""
        self.facts.memory.drop_sources(user_id, message_ids)
        forget = getattr(self.turns, "forget_messages", None)
        if forget is not None:
            forget(user_id, message_ids)

    def __getattr__(self, name: str) -> object:
        # Anything else the orchestrator asks of its memory is the turn memory's.
        turns = self.__dict__.get("turns")
        if turns is None:
            raise AttributeError(name)
        return getattr(turns, name)
