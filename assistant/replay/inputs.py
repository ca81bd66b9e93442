"""Reading a conversation to replay: JSONL chat logs, LoCoMo JSON, probe files.

Everything is parsed and validated before the replay starts, all or nothing, so a bad
file costs one clear error naming the line (JSONL) or the key path (LoCoMo) and never a
half-run replay or a half-written report.

JSONL, one object per line: ``{"role": "user"|"assistant", "content": str,
"timestamp"?: ISO 8601, "session"?: str, "id"?: str}``. User lines are the turns sent;
an assistant line right after a user line is that turn's recorded reply (what the
scripted model answers). A turn is referred to (by probes' evidence) by its ``id`` or its
line number. Probes JSONL: ``{"question": str, "evidence": [ref, ...], "category"?: …}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from assistant.errors import ReplayFormatError

__all__ = ["Probe", "ReplayTurn", "Script", "load_probes", "load_script", "synthetic_turns"]

#: Message roles a replayed line may carry (not user roles: see docs/architecture.md, Glossary).
MESSAGE_ROLES = ("user", "assistant")


@dataclass(frozen=True)
class ReplayTurn:
    """One user turn to send, with the recorded reply (if any) and its timestamp."""

    ref: str
    content: str
    session: str = "main"
    timestamp: datetime | None = None
    reply: str | None = None


@dataclass(frozen=True)
class Probe:
    """A question whose answer lies in the ``evidence`` turns (refs of user turns)."""

    question: str
    evidence: tuple[str, ...]
    category: str = "all"


@dataclass(frozen=True)
class Script:
    source: str
    kind: str  # "jsonl" | "locomo"
    turns: tuple[ReplayTurn, ...]
    probes: tuple[Probe, ...] = ()
    #: Assistant lines with no user line before them (e.g. a greeting): not replayable.
    unpaired_replies: int = 0
    #: LoCoMo: which conversation of the file this is.
    conversation: str | None = None
    #: Turns left out, by reason (``empty``: no text and no photo), counted in the report.
    skipped_turns: tuple[tuple[str, int], ...] = ()


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; bad JSON names its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReplayFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayFormatError(f"{path}, line {number}: not valid JSON ({exc.msg}, "
                                    f"column {exc.colno})") from exc
        if not isinstance(obj, dict):
            raise ReplayFormatError(f"{path}, line {number}: expected a JSON object, "
                                    f"got {type(obj).__name__}")
        yield number, obj


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise ReplayFormatError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise ReplayFormatError(f"{where}: {key!r} must be a non-empty string")
    return value


def _timestamp(obj: dict[str, Any], where: str) -> datetime | None:
    value = obj.get("timestamp")
    if value is None:
        return None
    problem = f"{where}: 'timestamp' must be an ISO 8601 string, got {value!r:.60}"
    if not isinstance(value, str):
        raise ReplayFormatError(problem)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ReplayFormatError(problem) from None


def _load_jsonl(path: Path) -> Script:
    turns: list[ReplayTurn] = []
    refs: set[str] = set()
    unpaired = 0
    previous_role = None
    for number, obj in _lines(path):
        where = f"{path}, line {number}"
        role = obj.get("role")
        if role is None:
            raise ReplayFormatError(f"{where}: missing key 'role'")
        if role not in MESSAGE_ROLES:
            raise ReplayFormatError(f"{where}: unknown role {role!r} "
                                    f"(expected one of {', '.join(MESSAGE_ROLES)})")
        content = _text(obj, "content", where)
        stamp = _timestamp(obj, where)
        session = obj.get("session", "main")
        if not isinstance(session, str) or not session.strip() or len(session) > 64:
            raise ReplayFormatError(f"{where}: 'session' must be a non-empty string of at most 64 characters")
        if role == "assistant":
            if previous_role == "user":
                turns[-1] = replace(turns[-1], reply=content)
            else:
                unpaired += 1
        else:
            ref = obj.get("id", str(number))
            if not isinstance(ref, (str, int)) or isinstance(ref, bool) or str(ref) in refs:
                raise ReplayFormatError(f"{where}: 'id' must be a string unique in the file, got {ref!r:.60}")
            refs.add(str(ref))
            turns.append(ReplayTurn(str(ref), content, session, stamp))
        previous_role = role
    if not turns:
        raise ReplayFormatError(f"{path}: no user lines to replay")
    return Script(str(path), "jsonl", tuple(turns), unpaired_replies=unpaired)


def _load_locomo(path: Path, conversation: str | None) -> Script:
    from assistant.bench.locomo_eval import SCORED, LocomoFormatError, load_locomo

    try:
        conversations = load_locomo(path)
    except LocomoFormatError as exc:
        raise ReplayFormatError(f"{path}: {exc}") from exc
    if not conversations:
        raise ReplayFormatError(f"{path}: top level: the list holds no conversations")
    if conversation is None:
        conv = conversations[0]
    else:
        found = [c for c in conversations if c.sample_id == conversation]
        if not found:
            known = ", ".join(c.sample_id for c in conversations)
            raise ReplayFormatError(f"{path}: no conversation with sample_id {conversation!r} (has: {known})")
        conv = found[0]
    kept = [t for t in conv.turns if t.text.strip() or t.caption]
    empty = len(conv.turns) - len(kept)
    if not kept:
        raise ReplayFormatError(f"{path}: conversation {conv.sample_id!r} has no turn with text")
    turns = tuple(ReplayTurn(t.dia_id, t.memory_text(), f"session_{t.session}", t.timestamp)
                  for t in kept)
    probes = tuple(Probe(q.question, q.evidence, str(q.category)) for q in conv.questions
                   if str(q.category) in SCORED and q.evidence)
    return Script(str(path), "locomo", turns, probes, conversation=conv.sample_id,
                  skipped_turns=(("empty", empty),) if empty else ())


def load_script(path: str | Path, *, conversation: str | None = None) -> Script:
    """A JSONL chat log, or (first character ``[``) a LoCoMo-format JSON file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise ReplayFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix not in (".jsonl", ".ndjson") and head.startswith(b"[")):
        return _load_locomo(path, conversation)
    return _load_jsonl(path)


_PLACES = ("Lisbon", "Porto", "Berlin", "Kyoto", "Nairobi", "Lima", "Oslo", "Hanoi", "Quito", "Perth")
_PEOPLE = ("my sister", "Ana", "my manager", "an old friend", "the neighbour", "Marco", "my dentist")
_TOPICS = ("gardening", "a new job", "marathon training", "a broken laptop", "jazz records",
           "a wedding", "tax forms", "learning Rust", "a leaking roof", "the book club")
_FILLER = ("honestly", "again", "later this week", "as usual", "for a while", "if possible",
           "before lunch", "with some help", "step by step", "without much fuss")


def synthetic_turns(n: int, *, seed: int = 7) -> list[dict[str, str]]:
    """A deterministic, varied ``n``-turn conversation as JSONL records (user line, then
    the recorded assistant reply): 5 to ~45 words a turn, a timestamp a few minutes apart."""
    import random
    from datetime import timedelta

    rng = random.Random(seed)
    start = datetime(2024, 3, 1, 9, 0)
    records: list[dict[str, str]] = []
    for i in range(n):
        place, person, topic = rng.choice(_PLACES), rng.choice(_PEOPLE), rng.choice(_TOPICS)
        extra = " ".join(rng.choice(_FILLER) for _ in range(rng.randint(0, 8)))
        text = rng.choice((f"Can you help me with {topic}?",
                           f"Yesterday I met {person} in {place} and we talked about {topic} {extra}.",
                           f"Quick question about {topic} {extra}: what would you do first?",
                           f"I am planning to visit {place} with {person}; any advice on {topic}?"))
        stamp = (start + timedelta(minutes=7 * i)).isoformat()
        records.append({"role": "user", "content": " ".join(text.split()), "timestamp": stamp})
        records.append({"role": "assistant", "timestamp": stamp,
                        "content": f"Good question about {topic}; start small and keep notes."})
    return records


def load_probes(path: str | Path, script: Script) -> tuple[Probe, ...]:
    """Probe questions whose evidence must name user turns of ``script``."""
    path = Path(path)
    if not path.is_file():
        raise ReplayFormatError(f"{path}: no such probes file")
    known = {t.ref for t in script.turns}
    probes = []
    for number, obj in _lines(path):
        where = f"{path}, line {number}"
        question = _text(obj, "question", where)
        evidence = obj.get("evidence")
        if evidence is None:
            raise ReplayFormatError(f"{where}: missing key 'evidence'")
        if not isinstance(evidence, list) or not evidence:
            raise ReplayFormatError(f"{where}: 'evidence' must be a non-empty list of turn ids"
                                    " or line numbers")
        refs = tuple(str(e) for e in evidence)
        if unknown := [r for r in refs if r not in known]:
            raise ReplayFormatError(f"{where}: evidence {unknown[0]!r} names no user turn of {script.source}")
        probes.append(Probe(question, refs, str(obj.get("category", "all"))))
    if not probes:
        raise ReplayFormatError(f"{path}: no probes")
    return tuple(probes)
