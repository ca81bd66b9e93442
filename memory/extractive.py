"""The deterministic summariser: what a session summary falls back to when the model
fails or writes junk (as a 135M model often does).

It keeps salient sentences — what the user says about themself (names, places,
preferences), numbers and dates, and requests — oldest dropped first when over the token
cap, and always states the latest user request on its own line. Same input, same
summary; never empty when there was anything to summarise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.providers.base import approx_token_count

__all__ = ["LATEST", "extractive_summary", "latest_request", "sentences", "split_summary"]

LATEST = "Latest request: "
EARLIER = "Earlier request: "
MAX_REQUEST_WORDS = 60
MIN_SALIENCE = 2  # a date word or a number alone ("nice day today") is not worth keeping

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_SELF = re.compile(r"\b(I|I'm|I've|I'd|I'll|me|my|mine|myself|we|our|us)\b", re.I)
_PREFERENCE = re.compile(r"\b(lik(e|es|ed|ing)|lov(e|es|ed|ing)|prefer\w*|hat(e|es|ed)|dislik\w+|"
                         r"enjoy\w*|favou?rites?|allergic|wants?|need(s|ed)?|liv(e|es|ed|ing)|"
                         r"mov(e|ed|ing)|work(s|ed|ing)?|born|name[sd]?|called|married|birthday)\b",
                         re.I)
_REQUEST = re.compile(r"\?|\b(please|can you|could you|would you|will you|remind|help|tell me|"
                      r"show me|find|book|schedule|let me know|don't forget|remember)\b", re.I)
_NUMBER = re.compile(r"\d")
_DATE = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(mon|tue|wed|"
                   r"thu|fri|sat|sun)[a-z]*day\b|\b(today|tomorrow|yesterday|tonight|next|last)\b", re.I)
_NAME = re.compile(r"(?<=[a-z,;:] )[A-Z][a-z]+")


@dataclass(frozen=True)
class _Point:
    text: str
    score: int
    order: int


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def _salience(sentence: str) -> int:
    return (2 * bool(_SELF.search(sentence)) + 2 * bool(_PREFERENCE.search(sentence))
            + 2 * bool(_REQUEST.search(sentence)) + bool(_NUMBER.search(sentence))
            + bool(_DATE.search(sentence)) + bool(_NAME.search(sentence)))


def _clip(text: str, words: int = MAX_REQUEST_WORDS) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def split_summary(text: str) -> tuple[list[str], str | None]:
    """``(body lines, latest request)`` of a stored summary."""
    body, latest = [], None
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith(LATEST):
            latest = line[len(LATEST):].strip() or None
        elif line:
            body.append(line.removeprefix("- "))
    return body, latest


def latest_request(turns: Sequence[tuple[str, str]]) -> str | None:
    """The newest user message among ``(role, content)`` turns, clipped."""
    for role, content in reversed(turns):
        if role == "user" and content.strip():
            return _clip(" ".join(content.split()))
    return None


def extractive_summary(previous: str, turns: Sequence[tuple[str, str]], *, max_tokens: int,
                       count: Callable[[str], int] = approx_token_count) -> str:
    """Fold ``turns`` (``(role, content)``, oldest first) into ``previous``.

    Earlier summary lines come first (already chosen once, so they count as salient);
    new user sentences follow. Over ``max_tokens`` the least salient, then oldest,
    go; the latest request line always stays (clipped to fit if it must).
    """
    body, prev_latest = split_summary(previous)
    latest = latest_request(turns) or prev_latest
    points = [_Point(line, 3 + _salience(line), i) for i, line in enumerate(body)]
    if prev_latest and latest != prev_latest:
        points.append(_Point(EARLIER + prev_latest, 6, len(points)))
    for role, content in turns:
        if role != "user":
            continue
        for sentence in sentences(content):
            if (score := _salience(sentence)) >= MIN_SALIENCE and sentence != latest:
                points.append(_Point(_clip(sentence, 40), score, len(points)))
    if not points and not latest:  # only assistant/tool turns: still say what happened
        points = [_Point(f"{role.capitalize()}: {_clip(sentences(content)[0], 30)}", 1, i)
                  for i, (role, content) in enumerate(turns) if content.strip()][-3:]
    first: dict[str, _Point] = {}  # one point per text (case-insensitive), the first kept
    for p in points:
        first.setdefault(p.text.lower(), p)
    points = list(first.values())

    def render(kept: list[_Point], last: str | None) -> str:
        lines = ["- " + p.text for p in sorted(kept, key=lambda p: p.order)]
        return "\n".join(lines + ([LATEST + last] if last else []))

    while points and count(render(points, latest)) > max_tokens:
        points.remove(min(points, key=lambda p: (p.score, p.order)))
    words = (latest or "").split()
    while words and count(render([], " ".join(words))) > max_tokens:
        words = words[: max(1, len(words) * 3 // 4)] if len(words) > 1 else []
    if latest and not points:
        return render([], " ".join(words) if words else _clip(latest, 8))
    return render(points, latest)
