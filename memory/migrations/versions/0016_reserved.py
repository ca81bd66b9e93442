"""Verdicts beside the reply text, never in it (issue 13).

Under the ``annotate`` citation policy older versions wrote a marker after each flagged
sentence into the stored reply (" ⚠ (unverified: …)"); it re-entered later prompts and
the model copied it. Now the text stays the model's and the verdicts live in the reply
record (``messages.context["checks"]``). This revision strips the markers from stored
replies (and their review items), moves each into the record as a sentence check when
the row has none, and marks the reply for re-indexing so recall forgets the old text.
No schema change; the downgrade leaves the text clean (the verdicts stay in the record).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

#: The markers as the guard wrote them (frozen here: the guard no longer has them to write).
MARKERS = {" ⚠ (unverified: the cited source does not support this)": "unsupported",
           " ⚠ (unverified: cites a source that was not provided)": "invalid_citation"}
_FIND = re.compile("|".join(re.escape(m.strip()) for m in MARKERS))
_CITE = re.compile(r"\[\s*([A-Za-z_]*\d+(?:\s*[,;]\s*[A-Za-z_]*\d+)*)\s*\]")
_BOUNDARY = re.compile(r"[.!?](?:\s*\[[^\]\n]{1,24}\])*\s+")


def strip_markers(text: str) -> tuple[str, list[dict]]:
    """``text`` without markers, and one sentence check per marker found."""
    checks: list[dict] = []
    out, cursor = [], 0
    for match in _FIND.finditer(text):
        before = text[cursor:match.start()].rstrip(" ")
        ends = list(_BOUNDARY.finditer(before))
        sentence = before[ends[-1].end():] if ends else before
        verdict = next(v for m, v in MARKERS.items() if m.strip() == match.group(0))
        cited = [i.strip() for m in _CITE.finditer(sentence) for i in re.split(r"[,;]", m.group(1))]
        checks.append({"text": " ".join(re.sub(r"\s*" + _CITE.pattern, "", sentence).split()), "cited": cited,
                       "verdict": verdict, "score": 0.0, "claim": True, "origin": "model"})
        out.append(before)
        cursor = match.end()
    out.append(text[cursor:])
    return "".join(out), checks


def upgrade() -> None:
    bind = op.get_bind()
    messages = sa.table("messages", sa.column("id", sa.Integer), sa.column("role", sa.String),
                        sa.column("content", sa.Text), sa.column("context", sa.JSON),
                        sa.column("token_count", sa.Integer), sa.column("indexed_at", sa.DateTime))
    like = sa.or_(*(messages.c.content.like(f"%{m.strip()}%") for m in MARKERS))
    for row in bind.execute(sa.select(messages.c.id, messages.c.content, messages.c.context)
                            .where(messages.c.role == "assistant", like)).all():
        text, checks = strip_markers(row.content or "")
        context = dict(row.context or {})
        context.setdefault("checks", checks)
        context["markers_migrated"] = len(checks)
        bind.execute(sa.update(messages).where(messages.c.id == row.id).values(
            content=text, context=context, token_count=None, indexed_at=None))
    reviews = sa.table("review_items", sa.column("id", sa.Integer), sa.column("content", sa.Text))
    like = sa.or_(*(reviews.c.content.like(f"%{m.strip()}%") for m in MARKERS))
    for item in bind.execute(sa.select(reviews.c.id, reviews.c.content).where(like)).all():
        bind.execute(sa.update(reviews).where(reviews.c.id == item.id).values(
            content=strip_markers(item.content or "")[0]))


def downgrade() -> None:
    # The markers are not written back: clean text is right for every version.
    pass
