"""Forget means gone: which stored messages restate a forgotten fact (issue 13).

Suppressing only a fact's source message and the reply right after it left every other
restatement recallable: "Since you're allergic to shellfish, skip the paella" said by the
assistant in a later session came back after the allergy was forgotten. Here a message
restates a forgotten fact when it holds the fact's value words (e.g. "shellfish") and
either a word of what the fact says about them ("allergic") or MiniLM similarity to the
fact's source messages. The forgotten row keeps no text, so the value is found again in
its source messages (kept until the chat is deleted) by the same rules that extracted it,
and the fact's key names what it said (``fact_text``). A fact told again since (a valid
fact with the same key and value) is no longer suppressed.

``suppressed`` is the one choke point: every recall path (``LayeredRecall``, through
``FactMemory.suppressed_sources``) and every summary fold (``SummaryStore.turns``) reads it.
SQL finds the candidates (``LIKE`` on the value words, this user only); only those are encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session

from memory.db import reads
from memory.facts_extract import extract_rules, fact_text, norm_value
from memory.models import Fact as FactRow
from memory.models import Message

__all__ = ["SIMILARITY", "restating_ids", "suppressed"]

#: MiniLM cosine to a source message that, with the value words, counts as a restatement.
SIMILARITY = 0.45
_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)
_GENERIC = {"user", "the", "and", "has", "have", "with", "for", "from", "that", "this", "their",
            "about", "likes", "dislikes"}


def _prefixes(text: str) -> set[str]:
    """Word prefixes (5 letters): "allergic" / "allergy", "shellfish" / "shellfishes"."""
    return {w.lower()[:5] for w in _WORD.findall(text)}


def _value(key: str, sources: Sequence[str]) -> str:
    for text in sources:
        for cand in extract_rules(text):
            if cand.key == key and cand.op != "forget" and cand.value:
                return cand.value
    return ""


def _fingerprints(engine: Engine, user_id: str) -> list[tuple[set[str], set[str], list[str]]]:
    """(value prefixes, predicate prefixes, source texts) per forgotten fact."""
    with engine.connect() as conn:
        facts = conn.execute(select(FactRow.key, FactRow.source_ids, FactRow.status, FactRow.value)
                             .where(FactRow.user_id == user_id)).all()
        ids = {int(i) for f in facts if f.status == "forgotten" for i in f.source_ids or []}
        texts = dict(conn.execute(select(Message.id, Message.content).where(
            Message.id.in_(ids), Message.user_id == user_id)).all()) if ids else {}
    valid = {(f.key, norm_value(f.value)) for f in facts if f.status == "valid"}
    out = []
    for fact in facts:
        if fact.status != "forgotten":
            continue
        sources = [texts[int(i)] for i in fact.source_ids or [] if int(i) in texts]
        value = _value(fact.key, sources)
        if not value or (fact.key, norm_value(value)) in valid:
            continue  # nothing to recognise it by, or told again since
        words = _prefixes(value) - {w[:5] for w in _GENERIC}
        says = _prefixes(fact_text(fact.key, value)) - words - {w[:5] for w in _GENERIC}
        if words:
            out.append((words, says, sources))
    return out


def _cosines(texts: Sequence[str], against: Sequence[str]) -> list[float]:
    import numpy as np

    from memory.minilm import get_encoder

    if not texts or not against:
        return [0.0] * len(texts)
    vecs = np.asarray(get_encoder().encode([*texts, *against]), dtype=np.float32)
    sims = vecs[: len(texts)] @ vecs[len(texts):].T
    return [float(row.max()) for row in np.nan_to_num(sims)]


def restating_ids(engine: Engine, user_id: str, *, exclude: Iterable[int] = ()) -> set[int]:
    """This user's message ids that restate one of their forgotten facts."""
    found: set[int] = set()
    skip = set(exclude)
    for words, says, sources in _fingerprints(engine, user_id):
        like = and_(*(Message.content.ilike(f"%{w}%") for w in sorted(words)))
        with engine.connect() as conn:
            found_rows: Sequence[Any] = conn.execute(select(Message.id, Message.content).where(
                Message.user_id == user_id, or_(like))).all()
        rows = [r for r in found_rows if r.id not in skip and words <= _prefixes(r.content)]
        direct = {r.id for r in rows if says & _prefixes(r.content)}
        rest = [r for r in rows if r.id not in direct]
        sims = _cosines([r.content for r in rest], sources)
        found |= direct | {r.id for r, s in zip(rest, sims, strict=True) if s >= SIMILARITY}
    return found


def suppressed(engine: Engine, user_id: str) -> set[int]:
    """This user's messages behind forgotten facts, the assistant reply that followed each
    ("Porto is lovely!") and any message restating them, in any session, before or after
    the forget. Empty at the cost of one query when nothing was forgotten."""
    with Session(reads(engine)) as db:
        rows = db.scalars(select(FactRow.source_ids).where(
            FactRow.user_id == user_id,
            or_(FactRow.status == "forgotten", FactRow.text_sha256.is_not(None))))
        sources = {int(i) for ids in rows for i in ids or []}
        if not sources:
            return set()
        replies = set()
        for msg_id, conversation in db.execute(select(Message.id, Message.conversation_id).where(
                Message.id.in_(sources), Message.user_id == user_id)).all():
            reply = db.scalar(select(Message.id).where(
                Message.conversation_id == conversation, Message.id > msg_id)
                .order_by(Message.id).limit(1))
            if reply is not None:
                replies.add(reply)
        role = dict(db.execute(select(Message.id, Message.role).where(Message.id.in_(replies))).all())
    return sources | {i for i in replies if role.get(i) == "assistant"} | restating_ids(engine, user_id)
