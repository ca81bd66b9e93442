"""Rendering retrieved memories as a prompt block within a token budget.

Token counts default to the MiniLM WordPiece tokenizer (already installed, offline):
on English chat text it lands within ~10-15 % of GPT-style BPE counts, which is honest
enough for budgeting; pass the chat model's own counter when one is at hand.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

from memory.minilm import default_model_dir

if TYPE_CHECKING:
    from memory.retrieval import MemoryHit, MemoryItem

__all__ = ["approx_tokens", "collapse", "format_date", "near_duplicate", "render_block"]

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


def _line(item: MemoryItem, date: str | None = None, also: Sequence[str] = ()) -> str:
    more = f" | also {', '.join(also)}" if also else ""
    return (f"[{item.source_id} | {date or format_date(item.timestamp)}{more}] "
            f"{' '.join(item.text.split())}")


_WORDS = re.compile(r"[^\W_]+")


def _signature(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in _WORDS.findall(text))


def near_duplicate(a: str, b: str, *, threshold: float = 0.9) -> bool:
    """Do two memories say the same thing (word-set Jaccard >= ``threshold``, 3+ words)?"""
    sa, sb = _signature(a), _signature(b)
    if len(sa) < 3 or len(sb) < 3:
        return sa == sb and bool(sa)
    return len(sa & sb) / len(sa | sb) >= threshold


def collapse(hits: Sequence[MemoryHit]) -> list[tuple[MemoryHit, tuple[str, ...]]]:
    """Near-duplicate hits folded into the best-ranked one, which cites all their sources."""
    out: list[tuple[MemoryHit, list[str]]] = []
    for hit in hits:
        twin = next((kept for kept in out if near_duplicate(kept[0].item.text, hit.item.text)), None)
        if twin is not None:
            twin[1].append(hit.item.source_id)
        else:
            out.append((hit, []))
    return [(hit, tuple(also)) for hit, also in out]


def _entry(hit: MemoryHit, also: Sequence[str] = ()) -> str:
    """The hit, with its context turns (if any) around it in conversation order.

    The first line of an entry carries the full date; a later line said on the same
    day says "same day" (a full date costs ~8 tokens a line, a quarter of a short turn).
    """
    if not hit.context:
        return "- " + _line(hit.item, also=also)
    items = sorted((hit.item, *hit.context), key=lambda i: (i.seq is None, i.seq or 0))
    first = items[0].timestamp
    lines = []
    for n, item in enumerate(items):
        same = (n > 0 and first is not None and item.timestamp is not None
                and item.timestamp.date() == first.date())
        lines.append(_line(item, SAME_DAY if same else None, also if item is hit.item else ()))
    return "- " + "\n  ".join(lines)


def render_block(hits: Sequence[MemoryHit], *, token_budget: int,
                 count_tokens: Callable[[str], int] = approx_tokens, temporal: bool = False,
                 max_items: int | None = None, fill: bool = False) -> str:
    """Header plus one entry per hit, best first, within ``token_budget``.

    ``hits`` are best first; a hit's context turns are shown (and dropped) with it, and
    near-duplicate hits are collapsed into one entry citing all their sources. By default
    the block keeps a prefix of the ranking (the first entry that does not fit ends it);
    with ``fill`` an entry that does not fit is passed over and later, shorter ones may
    still fill the budget (issue 17: the block is filled to its budget), at most
    ``max_items`` entries. For time questions the kept lines are shown oldest first
    (undated last) with a note on reading relative times; otherwise in rank order.
    Returns "" when nothing fits.
    """
    if not hits or token_budget <= 0:
        return ""
    head = HEADER + ("\n" + TEMPORAL_NOTE if temporal else "")
    used = count_tokens(head) + 1
    kept: list[tuple[int, MemoryHit, str]] = []
    for rank, (hit, also) in enumerate(collapse(hits)):
        if max_items is not None and len(kept) >= max_items:
            break
        line = _entry(hit, also)
        cost = count_tokens(line) + 1  # + the newline
        if used + cost > token_budget:
            if fill:
                continue  # a shorter entry further down may still fit
            break  # keep a prefix of the ranking: everything below this one is dropped
        used += cost
        kept.append((rank, hit, line))
    if not kept:
        return ""
    if temporal:
        kept.sort(key=lambda r: (r[1].date is None, r[1].date.timestamp() if r[1].date else 0, r[0]))
    return "\n".join([head, *(line for _, _, line in kept)])
