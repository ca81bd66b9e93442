"""Rendering retrieved memories as a prompt block within a token budget.

Token counts default to the MiniLM WordPiece tokenizer (already installed, offline):
on English chat text it lands within ~10-15 % of GPT-style BPE counts, which is honest
enough for budgeting; pass the chat model's own counter when one is at hand.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

from memory.minilm import default_model_dir

if TYPE_CHECKING:
    from memory.retrieval import MemoryHit, MemoryItem

__all__ = ["approx_tokens", "format_date", "render_block"]

HEADER = "Relevant memories ([source | date said] text):"
TEMPORAL_NOTE = ("Dates are when each line was said; read relative times ('yesterday', "
                 "'last week') against them.")
SAME_DAY = "same day"  # a context line said on the day of the line above it


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def approx_tokens(text: str) -> int:
    """WordPiece tokens of ``text`` (no special tokens)."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids) if text else 0


def format_date(value: datetime | None) -> str:
    if value is None:
        return "undated"
    hour = value.strftime("%I").lstrip("0") or "12"
    return f"{value.day} {value:%B %Y}, {hour}:{value:%M} {value:%p}".replace("AM", "am").replace("PM", "pm")


def _line(item: MemoryItem, date: str | None = None) -> str:
    return f"[{item.source_id} | {date or format_date(item.timestamp)}] {' '.join(item.text.split())}"


def _entry(hit: MemoryHit) -> str:
    """The hit, with its context turns (if any) around it in conversation order.

    The first line of an entry carries the full date; a later line said on the same
    day says "same day" (a full date costs ~8 tokens a line, a quarter of a short turn).
    """
    if not hit.context:
        return "- " + _line(hit.item)
    items = sorted((hit.item, *hit.context), key=lambda i: (i.seq is None, i.seq or 0))
    first = items[0].timestamp
    lines = [_line(items[0])]
    for item in items[1:]:
        same = first is not None and item.timestamp is not None and item.timestamp.date() == first.date()
        lines.append(_line(item, SAME_DAY if same else None))
    return "- " + "\n  ".join(lines)


def render_block(hits: Sequence[MemoryHit], *, token_budget: int,
                 count_tokens: Callable[[str], int] = approx_tokens, temporal: bool = False) -> str:
    """Header plus one line per hit; the lowest-ranked lines go first when over budget.

    ``hits`` are best first; a hit's context turns are shown (and dropped) with it. For time
    questions the kept lines are shown oldest first (undated last) with a note on reading
    relative times; otherwise in rank order.
    Returns "" when nothing (not even the best line) fits.
    """
    if not hits or token_budget <= 0:
        return ""
    head = HEADER + ("\n" + TEMPORAL_NOTE if temporal else "")
    used = count_tokens(head) + 1
    kept: list[tuple[int, MemoryHit, str]] = []
    for rank, hit in enumerate(hits):
        line = _entry(hit)
        cost = count_tokens(line) + 1  # + the newline
        if used + cost > token_budget:
            break  # keep a prefix of the ranking: everything below this one is dropped
        used += cost
        kept.append((rank, hit, line))
    if not kept:
        return ""
    if temporal:
        kept.sort(key=lambda r: (r[1].date is None, r[1].date.timestamp() if r[1].date else 0, r[0]))
    return "\n".join([head, *(line for _, _, line in kept)])
