"""The rolling session summary: turns that leave the recent window are folded into it.

Folding is incremental — previous summary + the newly dropped turns → new summary,
never the whole history again — and runs off the critical path as a ``summary`` job.
The configured model writes it as schema-validated JSON (purpose ``summary`` in the
ledger); when the call fails or the text is junk, the deterministic extractive
summariser (``memory.extractive``) takes over, so a summary is never empty and always
states the latest request. Every fold is a new stored version with its message range.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from assistant.protocols import Extract
from assistant.providers.base import approx_token_count
from memory.extractive import LATEST, extractive_summary, latest_request, sentences, split_summary
from memory.store import StoredMessage
from memory.summary_store import SummaryRecord, SummaryStore

__all__ = [
    "HEADER",
    "Summariser",
    "SummaryOut",
    "looks_like_junk",
    "render_summary_block",
    "transcript",
]

log = logging.getLogger(__name__)
HEADER = "Summary of the earlier conversation:"
INSTRUCTIONS = (
    "You keep a running summary of a conversation between a user and an assistant. Update "
    "the previous summary with the new turns: keep what the user said about themself "
    "(names, places, dates, numbers, preferences) and what they asked for; drop small "
    "talk. Write plain sentences, at most {words} words, as the JSON object "
    '{{"summary": "..."}}.')
_WORD = re.compile(r"[A-Za-z0-9']+")


class SummaryOut(BaseModel):
    """What the model must return for a fold."""

    # No maxLength: llama.cpp expands it into a grammar rule per character (and crashes
    # on long ones); the cap is enforced on the parsed text instead.
    summary: str = Field(min_length=1, description="The updated summary, plain sentences.")


def transcript(turns: Sequence[StoredMessage]) -> list[tuple[str, str]]:
    """``(role, text)`` per turn; tool calls and results described in a line."""
    out: list[tuple[str, str]] = []
    for m in turns:
        if m.role == "tool":
            out.append(("tool", f"(tool {(m.context or {}).get('name') or ''} result) "
                                f"{' '.join(m.content.split()[:60])}"))
        elif m.tool_calls:
            calls = ", ".join(f"{c['name']}({c.get('args', {})})" for c in m.tool_calls)
            out.append(("assistant", f"{m.content} [called {calls}]".strip()))
        else:
            out.append((m.role, m.content))
    return out


def looks_like_junk(text: str, source: str) -> str | None:
    """Why ``text`` is not a usable summary of ``source`` (``None`` when it is).

    Small models echo the instructions, loop on a phrase or invent; a summary must be
    words, mostly distinct, and mostly about what the source says.
    """
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 3:
        return "too short"
    trigrams = list(zip(words, words[1:], words[2:], strict=False))  # stops at the last whole one
    if len(words) >= 12 and len(set(trigrams)) / len(trigrams) < 0.5:
        return "repetitive"  # a model stuck in a loop repeats whole phrases
    if "json" in words or "schema" in words or "{" in text:
        return "echoes the instructions"
    content = [w for w in set(words) if len(w) > 3]
    known = {w.lower() for w in _WORD.findall(source)}
    if content and sum(w in known for w in content) / len(content) < 0.5:
        return "not grounded in the turns"
    return None


def render_summary_block(text: str, token_budget: int, count: Callable[[str], int]) -> str:
    """The summary under its header within ``token_budget``: the oldest lines go first;
    the latest-request line goes last (clipped before it goes). "" if nothing fits."""
    body, latest = split_summary(text)
    tail = [LATEST + latest] if latest else []
    lines = ["- " + s for line in body for s in sentences(line)]
    while True:
        block = "\n".join([HEADER, *lines, *tail])
        if count(block) <= token_budget or not (lines or tail):
            break
        if lines:
            lines.pop(0)
        else:
            words = tail[0].split()
            tail = [" ".join(words[: len(words) * 2 // 3])] if len(words) > 3 else []
    return block if (lines or tail) and count(block) <= token_budget else ""


class Summariser:
    """Folds a session's dropped turns into its summary, one bounded chunk per call.

    ``model`` is a ``ChatModel`` or a zero-argument callable returning one (so the
    Assistant's lazily built model is only loaded when a fold actually runs); ``None``
    means extractive only. ``extract`` (``assistant.extract.extract``) asks it for the
    summary as JSON; it is injected because memory may not import the assistant layer.
    """

    def __init__(self, summaries: SummaryStore, model: Any = None, *, max_tokens: int = 300,
                 fold_tokens: int = 1200, count: Callable[[str], int] = approx_token_count,
                 extract: Extract | None = None) -> None:
        if model is not None and extract is None:
            raise TypeError("a Summariser with a model needs extract= (assistant.extract.extract)")
        self.summaries = summaries
        self._model = model
        #: The structured-output call, passed in by the assistant (memory sits below it).
        self.extract = extract
        self.max_tokens = max_tokens
        self.fold_tokens = fold_tokens
        self.count = count

    def _chat_model(self) -> Any:
        model = self._model
        return model() if callable(model) and not hasattr(model, "request") else model

    def fold(self, user_id: str, session_id: str, upto_id: int) -> SummaryRecord | None:
        """Cover every usable message up to ``upto_id``; returns the newest version."""
        previous = self.summaries.latest(user_id, session_id)
        while True:
            after = previous.to_id if previous else 0
            pending = self.summaries.turns(user_id, session_id, after, upto_id)
            if not pending:
                return previous
            chunk: list[StoredMessage] = []
            used = 0
            for m in pending:  # a bounded slice per call: the model never sees it all
                cost = self.count(m.content)
                if chunk and used + cost > self.fold_tokens:
                    break
                chunk.append(m)
                used += cost
            record = self._fold_once(user_id, session_id, previous, chunk)
            if record is None:  # another worker wrote this version: start from theirs
                record = self.summaries.latest(user_id, session_id)
                if record is None or (previous and record.version <= previous.version):
                    return record
            previous = record

    def _fold_once(self, user_id: str, session_id: str, previous: SummaryRecord | None,
                   chunk: list[StoredMessage]) -> SummaryRecord | None:
        turns = transcript(chunk)
        prev_text = previous.text if previous else ""
        text, method, model_label, error = "", "extractive", None, None
        try:
            model = self._chat_model()
            if model is not None:
                model_label = model.label
                text = self._ask(model, user_id, session_id, prev_text, turns)
                method = "model"
        except Exception as exc:  # noqa: BLE001 - a failed model call means: fall back
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.info("summary model failed for %s/%s; extractive fallback: %s", user_id,
                     session_id, error)
        if method != "model":
            text = extractive_summary(prev_text, turns, max_tokens=self.max_tokens, count=self.count)
        return self.summaries.save(
            user_id, session_id, version=(previous.version + 1) if previous else 1,
            from_id=previous.from_id if previous else chunk[0].id, to_id=chunk[-1].id, text=text,
            method=method, model=model_label, token_count=self.count(text), error=error)

    def _ask(self, model: Any, user_id: str, session_id: str, previous: str,
             turns: list[tuple[str, str]]) -> str:
        """The model's fold, validated; raises when it is unusable."""
        extract = self.extract
        assert extract is not None  # checked in __init__: a model comes with its extract
        body, prev_latest = split_summary(previous)
        prev = " ".join(body + ([f"Earlier request: {prev_latest}"] if prev_latest else []))
        lines = "\n".join(f"{role.capitalize()}: {text}" for role, text in turns)
        source = f"Previous summary: {prev or '(none yet)'}\n\nNew turns:\n{lines}"
        words = max(20, self.max_tokens * 3 // 5)
        out = extract(model, SummaryOut, source, instructions=INSTRUCTIONS.format(words=words),
                      metadata={"purpose": "summary", "user_id": user_id,
                                "session_id": session_id}, max_reasks=0,
                      max_tokens=min(self.max_tokens * 2, 512))
        summary = " ".join(out.summary.split())
        schema_text = json.dumps(SummaryOut.model_json_schema()).lower()
        if summary.lower().strip(" .") in f"{INSTRUCTIONS} {schema_text}".lower():
            raise ValueError(f"summary rejected (echoes the instructions): {summary[:120]!r}")
        if reason := looks_like_junk(summary, source):
            raise ValueError(f"summary rejected ({reason}): {summary[:120]!r}")
        latest = latest_request(turns) or prev_latest
        text = summary + (f"\n{LATEST}{latest}" if latest else "")
        if self.count(text) > self.max_tokens:
            raise ValueError(f"summary over its cap ({self.count(text)} > {self.max_tokens} tokens)")
        return text
