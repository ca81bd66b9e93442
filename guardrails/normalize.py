"""Unicode hygiene: one canonical form of text before any other guard looks at it.

Why: look-alike and invisible characters defeat pattern-based guards ("ig\u200bnore"),
bidi controls can make text display differently from what a model reads, and smart
quotes or odd spaces make the same message tokenise differently. Normalising first means
PII and injection rules only ever have to match plain text. Binary junk is refused
outright: it costs tokens and means nothing to a model.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections import Counter
from typing import Any, TypeVar

from assistant.errors import InputRejected
from guardrails.base import Guard, GuardContext

__all__ = ["Normalize", "is_junk", "item_text", "normalize_text", "reject_junk", "with_text"]

T = TypeVar("T")

ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
QUOTES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u2039": "'",
    "\u203a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"', "\u300c": '"', "\u300d": '"',
}
_LINE_BREAKS = {"\r\n": "\n", "\r": "\n", "\u2028": "\n", "\u2029": "\n\n", "\x85": "\n",
                "\x0b": "\n", "\x0c": "\n"}
_INNER_SPACES = re.compile(r"(?<=\S) {2,}(?=\S)")  # leading indentation (code) is kept
_MANY_BREAKS = re.compile(r"\n{3,}")


def _is_bad(ch: str) -> bool:
    """Characters that only show up in binary data or broken decoding."""
    if ch == "\ufffd" or ch == "\x00":
        return True
    cat = unicodedata.category(ch)
    return cat in ("Cn", "Co", "Cs") or (cat == "Cc" and ch not in "\n\t\r")


def is_junk(text: str, *, ratio: float = 0.2, minimum: int = 3) -> bool:
    """True when at least ``minimum`` and ``ratio`` of the characters are binary junk."""
    bad = sum(1 for ch in text if _is_bad(ch))
    return bad >= minimum and bad >= ratio * max(len(text), 1)


def reject_junk(text: str, *, ratio: float = 0.2, guard: str = "normalize") -> None:
    """Refuse binary data pasted as text (``InputRejected`` with a user-facing sentence)."""
    if is_junk(text, ratio=ratio):
        raise InputRejected(
            "input looks like binary data",
            user_message="Your message looks like binary or corrupted data rather than text. "
            "Please paste plain text (or describe the file) and try again.",
            guard=guard)


def normalize_text(text: str) -> tuple[str, Counter[str]]:
    """Return the canonical text and how many characters each step changed."""
    counts: Counter[str] = Counter()
    for old, new in _LINE_BREAKS.items():
        if old in text:
            counts["line_breaks"] += text.count(old)
            text = text.replace(old, new)
    kept: list[str] = []
    for ch in text:
        if ch in ZERO_WIDTH:
            counts["zero_width"] += 1
        elif ch in BIDI:
            counts["bidi"] += 1
        elif ch in "\n\t":
            kept.append(ch)
        elif (cat := unicodedata.category(ch)) == "Cc":
            counts["control"] += 1
        elif cat == "Cf" or "\U000e0000" <= ch <= "\U000e007f":
            counts["format"] += 1  # soft hyphens, invisible operators, Unicode tag chars
        elif ch in QUOTES:
            counts["quotes"] += 1
            kept.append(QUOTES[ch])
        else:
            kept.append(ch)
    text = "".join(kept)
    spaced = "".join(" " if unicodedata.category(ch) == "Zs" and ch != " " else ch for ch in text)
    if spaced != text:
        counts["spaces"] += sum(1 for a, b in zip(text, spaced, strict=True) if a != b)  # same length
        text = spaced
    nfkc = unicodedata.normalize("NFKC", text)
    if nfkc != text:
        counts["nfkc"] += sum(1 for ch in text if unicodedata.normalize("NFKC", ch) != ch)
        text = nfkc
    lines = text.split("\n")  # rstrip per line: a trailing-space regex is quadratic on long runs
    counts["spaces"] += sum(1 for line in lines if line.endswith((" ", "\t")))
    text = "\n".join(line.rstrip(" \t") for line in lines)
    for pattern, repl, key in ((_INNER_SPACES, " ", "spaces"), (_MANY_BREAKS, "\n\n", "line_breaks")):
        text, n = pattern.subn(repl, text)
        counts[key] += n
    stripped = text.strip()
    if stripped != text:
        counts["trimmed"] += 1
    return stripped, +counts


@functools.lru_cache(maxsize=8192)
def _normalized(text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    """``normalize_text`` as an immutable pair, remembered per text: retrieved chunks and
    memories come back turn after turn, and the result depends on the text alone."""
    clean, counts = normalize_text(text)
    return clean, tuple(counts.items())


def item_text(item: Any) -> str | None:
    """The text of a retrieval item: a str, an object with ``.text``, or a hit whose
    ``.item`` has ``.text`` (``memory.retrieval.MemoryHit``)."""
    if isinstance(item, str):
        return item
    text = getattr(item, "text", None)
    if isinstance(text, str):
        return text
    inner = getattr(item, "item", None)
    text = getattr(inner, "text", None)
    return text if isinstance(text, str) else None


def with_text(item: T, text: str) -> T:
    """A copy of ``item`` carrying ``text`` (frozen dataclasses and pydantic models too)."""
    if isinstance(item, str):
        return text  # type: ignore[return-value]  # T is str here; mypy does not narrow a TypeVar
    if isinstance(getattr(item, "text", None), str):
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return dataclasses.replace(item, text=text)
        if hasattr(item, "model_copy"):
            return item.model_copy(update={"text": text})
        item.text = text  # type: ignore[attr-defined]  # checked by the getattr above
        return item
    inner = getattr(item, "item", None)
    if inner is not None and dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.replace(item, item=with_text(inner, text))
    return item


def _note(total: dict[str, int], counts: Counter[str]) -> None:
    """Add ``counts`` into the turn's running ``total`` (in place)."""
    for kind, n in counts.items():
        total[kind] = total.get(kind, 0) + n


class Normalize(Guard):
    """Canonicalise user input (and retrieved chunks); reject binary junk.

    Notes ``ctx.normalize`` (input) and ``ctx.normalize_retrieval``
    with character counts per category, for the audit log.
    """

    name = "normalize"

    def __init__(self, *, junk_ratio: float = 0.2, retrieval: bool = True) -> None:
        self.junk_ratio = junk_ratio
        self.retrieval = retrieval

    def before_input(self, ctx: GuardContext, text: str) -> str:
        reject_junk(text, ratio=self.junk_ratio, guard=self.name)
        clean, counts = normalize_text(text)
        _note(ctx.normalize, counts)
        if not clean:
            raise InputRejected("empty message after normalisation", guard=self.name,
                                user_message="Your message is empty — type something and send again.")
        return clean

    def after_retrieval(self, ctx: GuardContext, items: list[T]) -> list[T]:
        if not self.retrieval:
            return items
        out: list[T] = []
        total: Counter[str] = Counter()
        for item in items:
            text = item_text(item)
            if text is None:
                out.append(item)
                continue
            clean, counts = _normalized(text)
            total.update(dict(counts))
            out.append(with_text(item, clean) if clean != text else item)
        _note(ctx.normalize_retrieval, total)
        return out
