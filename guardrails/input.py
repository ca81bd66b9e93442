"""Input hygiene: the first guard every turn passes."""

from __future__ import annotations

import unicodedata

from assistant.errors import InputRejected
from guardrails.base import Guard, GuardContext
from guardrails.normalize import reject_junk

__all__ = ["InputLimits"]

_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}


class InputLimits(Guard):
    """Reject empty or oversized messages before anything is stored or sent to a model.

    Control characters (other than newlines and tabs) are stripped, because they break
    tokenisers and logs and carry no meaning for a chat.
    """

    name = "input-limits"

    def __init__(self, max_chars: int = 20_000) -> None:
        self.max_chars = max_chars

    def before_input(self, ctx: GuardContext, text: str) -> str:
        if not isinstance(text, str):
            raise InputRejected(f"message must be text, got {type(text).__name__}",
                                user_message="Please send your message as text.", guard=self.name)
        # Judge binary junk on the raw text: stripping control bytes first would hide it.
        reject_junk(text, guard=self.name)
        cleaned = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
        if all(unicodedata.category(ch) in _INVISIBLE or ch in "\n\t" for ch in cleaned):
            raise InputRejected("empty message",
                                user_message="Your message is empty — type something and send again.",
                                guard=self.name)
        if len(cleaned) > self.max_chars:
            raise InputRejected(
                f"message has {len(cleaned)} characters (limit {self.max_chars})",
                user_message=f"Your message is too long ({len(cleaned):,} characters; the limit is "
                f"{self.max_chars:,}). Please shorten it or split it up.",
                guard=self.name,
            )
        return cleaned.strip()
