"""LoCoMo (Maharana et al., ACL 2024) loading, ingestion and retrieval evaluation.

Metric: turn-level evidence recall@k on categories 1-4 (5, adversarial, has no answer
to retrieve). A question's recall is the *fraction* of its evidence turns found among the
top-k retrieved items (not hit-any) — an item being a hit together with the adjacent
context turns it is shown with when neighbour expansion is on (``neighbours=0`` scores
single turns; memory-block tokens show what the context costs); "all" is the mean over every
scored question, each category the mean over its questions (0.0 when a category has none).

Evidence hygiene (the released data has a few typos): "D8:6; D9:17" is split in two,
"D:11:26" is read as "D11:26"; ids that are still malformed or name no turn of the
conversation are dropped (``Question.dropped``), and a question left with no evidence
is not scored. Memory-block tokens are counted with the MiniLM WordPiece tokenizer
(see ``memory.memblock``); latency is the wall time of one ``search`` call (query
embedding + dense scores + BM25 + fusion + neighbour turns).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from memory.memblock import approx_tokens, render_block
from memory.retrieval import HybridRetriever, MemoryItem, RetrievalConfig, is_temporal

__all__ = ["Conversation", "LocomoFormatError", "Question", "Turn", "evaluate", "ingest",
           "leave_one_out", "load_locomo", "parse_session_date"]

SCORED = ("1", "2", "3", "4")
_DIA = re.compile(r"^D:?(\d+):(\d+)$")
_SESSION = re.compile(r"^session_(\d+)$")
_PHOTO = re.compile(r"^(?:a|an) (?:photo|picture|image) of ", re.IGNORECASE)


class LocomoFormatError(ValueError):
    """The file is not in LoCoMo shape; the message names the offending key/position."""


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    session: int
    seq: int
    timestamp: datetime | None
    caption: str = ""

    def memory_text(self) -> str:
        """Speaker-attributed text, with the shared photo's caption when there is one."""
        caption = _PHOTO.sub("", self.caption)  # BLIP says "a photo of ..." every time
        photo = f" [shares a photo: {caption}]" if caption else ""
        return f"{self.speaker}: {self.text}{photo}"


@dataclass(frozen=True)
class Question:
    question: str
    category: int
    evidence: tuple[str, ...]
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    speakers: tuple[str, str]
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]


def parse_session_date(text: str) -> datetime | None:
    """'1:56 pm on 8 May, 2023' -> datetime; None when the text has another shape."""
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%d %B, %Y", "%d %B %Y"):
        try:
            return datetime.strptime(" ".join(text.split()), fmt)
        except ValueError:
            continue
    return None


def _need(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise LocomoFormatError(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise LocomoFormatError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise LocomoFormatError(f"{where}.{key}: expected {names}, got {type(value).__name__}")
    return value


def _evidence(raw: Iterable[Any], known: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    kept: list[str] = []
    dropped: list[str] = []
    for entry in raw:
        for part in re.split(r"[;,\s]+", str(entry).strip()):
            if not part:
                continue
            m = _DIA.match(part)
            dia = f"D{m.group(1)}:{m.group(2)}" if m else part
            if m and dia in known:
                if dia not in kept:
                    kept.append(dia)
            else:
                dropped.append(part)
    return tuple(kept), tuple(dropped)


def _conversation(sample: Any, i: int) -> Conversation:
    where = f"[{i}]"
    sample_id = str(_need(sample, "sample_id", (str, int), where))
    where = f"[{i}] ({sample_id})"
    conv = _need(sample, "conversation", dict, where)
    speakers = (_need(conv, "speaker_a", str, f"{where}.conversation"),
                _need(conv, "speaker_b", str, f"{where}.conversation"))
    sessions = sorted((int(m.group(1)), key) for key in conv if (m := _SESSION.match(key)))
    if not sessions:
        raise LocomoFormatError(f"{where}.conversation: no 'session_N' keys")
    turns: list[Turn] = []
    for n, key in sessions:
        spot = f"{where}.conversation.{key}"
        session = conv[key]
        if not isinstance(session, list):
            raise LocomoFormatError(f"{spot}: expected a list of turns, got {type(session).__name__}")
        date_text = conv.get(f"{key}_date_time")
        if date_text is not None and not isinstance(date_text, str):
            raise LocomoFormatError(f"{where}.conversation.{key}_date_time: expected str")
        stamp = parse_session_date(date_text) if date_text else None
        for j, turn in enumerate(session):
            tw = f"{spot}[{j}]"
            caption = turn.get("blip_caption", "") if isinstance(turn, dict) else ""
            if not isinstance(caption, str):
                raise LocomoFormatError(f"{tw}.blip_caption: expected str")
            turns.append(Turn(dia_id=_need(turn, "dia_id", str, tw), speaker=_need(turn, "speaker", str, tw),
                              text=_need(turn, "text", str, tw), session=n, seq=j, timestamp=stamp,
                              caption=caption.strip()))
    ids = [t.dia_id for t in turns]
    if len(set(ids)) != len(ids):
        dup = next(d for d in ids if ids.count(d) > 1)
        raise LocomoFormatError(f"{where}.conversation: duplicate dia_id {dup!r}")
    known = set(ids)
    questions = []
    for j, qa in enumerate(_need(sample, "qa", list, where)):
        qw = f"{where}.qa[{j}]"
        category = _need(qa, "category", int, qw)
        evidence = _need(qa, "evidence", list, qw) if category != 5 else qa.get("evidence", [])
        kept, dropped = _evidence(evidence, known)
        questions.append(Question(_need(qa, "question", str, qw), category, kept, dropped))
    return Conversation(sample_id, speakers, tuple(turns), tuple(questions))


def load_locomo(source: str | Path | Sequence[Any]) -> list[Conversation]:
    """Parse and validate a LoCoMo-format file (or already-decoded list), all or nothing."""
    data = source
    if isinstance(source, (str, Path)):
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise LocomoFormatError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(data, list):
        raise LocomoFormatError(f"top level: expected a list of conversations, got {type(data).__name__}")
    conversations = [_conversation(sample, i) for i, sample in enumerate(data)]
    seen = [c.sample_id for c in conversations]
    if len(set(seen)) != len(seen):
        raise LocomoFormatError("top level: duplicate sample_id")
    return conversations


def user_for(conv: Conversation) -> str:
    return f"locomo:{conv.sample_id}"


def ingest(retriever: HybridRetriever, conv: Conversation, user_id: str | None = None) -> str:
    """Store every turn of one conversation under one user (both speakers take part)."""
    user = user_id or user_for(conv)
    retriever.add(user, [MemoryItem(source_id=t.dia_id, text=t.memory_text(),
                                    session_id=f"session_{t.session}", speaker=t.speaker,
                                    timestamp=t.timestamp, seq=t.seq) for t in conv.turns])
    return user


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def evaluate(retriever: HybridRetriever, conversations: Sequence[Conversation], *,
             ks: Sequence[int] = (5, 10), config: RetrievalConfig | None = None,
             token_budget: int = 10**6, count_tokens: Callable[[str], int] = approx_tokens,
             ingested: bool = False, progress: Callable[[int], None] | None = None,
             by_conversation: bool = False) -> dict:
    """Evidence recall@k per category and overall, memory-block tokens, search latency.

    The memory block is rendered from the top max(ks) items (``token_budget`` caps it;
    the default effectively does not). ``progress`` is called with 1 per question.
    ``by_conversation`` adds {sample_id: {"n": questions, "recall": {k: mean}}}, to show
    the spread across conversations (and for leave-one-conversation-out checks).
    """
    ks = sorted({int(k) for k in ks})
    top = ks[-1]
    per: dict[int, dict[str, list[float]]] = {k: {c: [] for c in SCORED} for k in ks}
    tokens: list[float] = []
    latency: list[float] = []
    per_conv: dict[str, dict[int, list[float]]] = {}
    for conv in conversations:
        user = user_for(conv) if ingested else ingest(retriever, conv)
        mine = per_conv.setdefault(conv.sample_id, {k: [] for k in ks})
        for q in conv.questions:
            if str(q.category) not in SCORED or not q.evidence:
                continue
            start = time.perf_counter()
            hits = retriever.search(user, q.question, k=top, config=config)
            latency.append((time.perf_counter() - start) * 1000)
            for k in ks:  # the turns the top-k hits show: each hit plus its context turns
                found = {sid for h in hits[:k] for sid in h.source_ids}
                per[k][str(q.category)].append(sum(e in found for e in q.evidence) / len(q.evidence))
                mine[k].append(per[k][str(q.category)][-1])
            block = render_block(hits, token_budget=token_budget, count_tokens=count_tokens,
                                 temporal=is_temporal(q.question))
            tokens.append(count_tokens(block))
            if progress:
                progress(1)
    recall = {}
    for k in ks:
        row = {c: float(np.mean(v)) if v else 0.0 for c, v in per[k].items()}
        everything = [x for v in per[k].values() for x in v]
        row["all"] = float(np.mean(everything)) if everything else 0.0
        recall[str(k)] = row
    out = {"recall": recall,
           "memory_tokens": {"mean": float(np.mean(tokens)) if tokens else 0.0, "p95": _pct(tokens, 95)},
           "latency_ms": {"p50": _pct(latency, 50), "p95": _pct(latency, 95)}}
    if by_conversation:
        out["by_conversation"] = {
            sid: {"n": len(rows[ks[0]]),
                  "recall": {str(k): float(np.mean(v)) if v else 0.0 for k, v in rows.items()}}
            for sid, rows in per_conv.items()}
    return out


def scored_questions(conversations: Iterable[Conversation]) -> int:
    return sum(1 for c in conversations for q in c.questions if str(q.category) in SCORED and q.evidence)


def leave_one_out(by_design: dict[str, dict[str, dict]], k: int) -> dict:
    """Leave-one-conversation-out check of a design choice (how much picking the best of
    several designs on these conversations flatters the figure).

    ``by_design``: design name -> ``evaluate(..., by_conversation=True)["by_conversation"]``.
    For each conversation, the design with the best question-weighted recall@k on the
    *other* conversations is picked and scored on the held-out one; the result is the
    question-weighted mean of those held-out scores, beside the in-sample best.
    """
    names = list(by_design)
    convs = list(next(iter(by_design.values()))) if names else []

    def pooled(name: str, skip: str | None) -> float:
        rows = [r for c, r in by_design[name].items() if c != skip]
        n = sum(r["n"] for r in rows)
        return sum(r["recall"][str(k)] * r["n"] for r in rows) / n if n else 0.0

    held = []
    for conv in convs:
        best = max(names, key=lambda name: pooled(name, conv))
        row = by_design[best][conv]
        held.append({"held_out": conv, "picked": best, "train": pooled(best, conv),
                     "recall": row["recall"][str(k)], "n": row["n"]})
    total = sum(h["n"] for h in held)
    in_sample = max(names, key=lambda name: pooled(name, None)) if names else ""
    return {"k": k, "folds": held,
            "recall": sum(h["recall"] * h["n"] for h in held) / total if total else 0.0,
            "in_sample_best": in_sample, "in_sample_recall": pooled(in_sample, None) if names else 0.0}
