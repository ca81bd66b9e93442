"""What is worth remembering: the one predicate that decides whether a stored turn
takes a slot in turn memory (issue 17).

Why: a reply that only restates or acknowledges the user's turn ("Noted: I moved to
Porto", "Got it!") adds nothing the user turn does not hold, yet as its own memory it
takes a slot (and its neighbour window) from a turn that does. Such replies are left
out of the index; the user turn they echo stays. Everything else — user turns, and
replies that say something new — is kept.
"""

from __future__ import annotations

import re

__all__ = ["ACKNOWLEDGEMENTS", "is_echo", "worth_indexing"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: Replies that are acknowledgement alone (compared after lower-casing and dropping punctuation).
ACKNOWLEDGEMENTS = frozenset({
    "ok", "okay", "noted", "got it", "thanks", "thank you", "sure", "understood", "i see",
    "great", "cool", "nice", "alright", "all right", "will do", "sounds good", "yes", "no",
})
_LEADS = ("noted", "got it", "ok", "okay", "understood", "sure", "thanks")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def is_echo(reply: str, user_text: str, *, overlap: float = 0.8) -> bool:
    """Does ``reply`` only acknowledge or restate ``user_text``?

    An acknowledgement alone, or a reply whose words (after a leading "Noted:" / "Got
    it," …) are at least ``overlap`` contained in the user's turn, in any order.
    """
    words = _words(reply)
    if not words:
        return True
    if " ".join(words) in ACKNOWLEDGEMENTS:
        return True
    joined = " ".join(words)
    for lead in _LEADS:
        if joined.startswith(lead + " "):
            words = words[len(lead.split()):]
            break
    if not words or not user_text:
        return not words
    said = set(_words(user_text))
    return sum(w in said for w in words) / len(words) >= overlap


def worth_indexing(role: str, content: str, previous_user: str | None = None) -> bool:
    """Should this turn become a memory of its own? User turns with text: yes; an
    assistant reply: unless it echoes or acknowledges ``previous_user`` (the user turn it
    answers)."""
    if not content.strip():
        return False
    if role != "assistant":
        return True
    return not is_echo(content, previous_user or "")
