"""Replay a long conversation through the real ``Assistant`` and measure what happens.

Real SQLite/Chroma (a scratch data dir unless told otherwise), the real orchestrator,
and either the configured model or a deterministic scripted one. Per turn it reads the
reply's *stored* ``context`` (so it charts whatever blocks the orchestrator records:
every ``*_tokens`` key), checks the pending-question rule against it, and times each
stage (the ``stages_ms`` the orchestrator stores, plus first token, storage of both
messages and the whole turn from ``assistant.replay.timing``'s thin wrappers). Memory
jobs are counted from their tables, whichever exist. ``assistant.replay.report`` turns
the result into files.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from langchain_core.messages import SystemMessage
from sqlalchemy import Engine, MetaData, Table, func, inspect, select

from assistant.context import with_preamble
from assistant.errors import ContextWindowTooSmall, InputRejected
from assistant.orchestrator import Assistant
from assistant.providers import ChatModel, ScriptedModel, build_model
from assistant.replay.inputs import Probe, ReplayTurn, Script
from assistant.replay.timing import (
    Clock,
    ScriptedReplies,
    TimedModel,
    TimedStore,
    stages_ms,
)
from assistant.reply import Reply
from assistant.settings import Settings
from memory.context_split import check_window
from memory.models import Message
from memory.store import StoredMessage

__all__ = ["ReplayOptions", "default_reply", "memory_counts", "run_replay", "token_summary"]

STAGES = ("guards", "storage", "context", "model_first_token", "model", "verification", "total")
_NOT_MEMORY = {"users", "conversations", "messages", "provider_calls", "budget_counters",
               "budget_alerts", "alembic_version"}
_GROUP_BY = ("kind", "status", "op", "action", "method", "extractor")


@dataclass(frozen=True)
class ReplayOptions:
    model: str = "scripted"  # or "configured"
    user_id: str = "replay"
    limit: int | None = None
    flush_every: int = 10
    context_window: int = 2048  # the scripted model's; a configured model brings its own
    progress: bool = True


def default_reply(text: str) -> str:
    """The scripted answer when the file recorded none: short, deterministic, varied."""
    words = text.split()
    return "Noted: " + " ".join(words[:12]) + (" …" if len(words) > 12 else "")


def memory_counts(engine: Engine, user_id: str, cache: dict[str, Table] | None = None) -> dict:
    """Rows per memory table for this user (also counted by kind/status/method/...
    where the table has such a column: facts valid/superseded/deleted, jobs per kind,
    summaries by model or extractive), plus how many messages are indexed. Reads
    whatever tables exist, so it keeps working as memory features come and go."""
    cache = {} if cache is None else cache
    out: dict[str, dict] = {}
    with engine.connect() as conn:
        out["messages"] = {
            "rows": conn.scalar(select(func.count()).where(Message.user_id == user_id)) or 0,
            "indexed": conn.scalar(select(func.count()).where(
                Message.user_id == user_id, Message.indexed_at.is_not(None))) or 0}
        for name in sorted(set(inspect(conn).get_table_names()) - _NOT_MEMORY):
            table = cache.get(name)
            if table is None:
                table = cache[name] = Table(name, MetaData(), autoload_with=conn)
            if "user_id" not in table.c:
                continue
            where = table.c.user_id == user_id
            count = conn.scalar(select(func.count()).select_from(table).where(where))
            entry: dict[str, Any] = {"rows": count or 0}
            for group in (c for c in _GROUP_BY if c in table.c):
                rows = conn.execute(select(table.c[group], func.count()).where(where)
                                    .group_by(table.c[group]))
                entry[group] = {str(value): n for value, n in rows}
            out[name] = entry
    return out


def _blocks(context: dict) -> dict[str, int]:
    """Every ``<block>_tokens`` number of the stored context (``total_tokens`` aside)."""
    return {key[: -len("_tokens")]: int(value) for key, value in context.items()
            if key.endswith("_tokens") and key != "total_tokens" and isinstance(value, (int, float))}


def _stored_reply(bot: Assistant, user: str, session: str, message_id: int | None) -> StoredMessage | None:
    for message in reversed(bot.store.recent(user, session, 4)):
        if message.id == message_id:
            return message
    return None


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _turn_record(index: int, turn: ReplayTurn, session: str, reply: Reply, stored: StoredMessage | None,
                 stages: dict[str, float], sent_last: str | None, user_text: str) -> dict:
    """One turn's row: blocks and counts from the stored context, and the pending-question
    check — the user message's id is in the prompt's ``message_ids`` and its text is
    the last message the model was sent (``sent_last``; None when no model was called)."""
    context = (stored.context if stored is not None else None) or {}
    # The orchestrator's own stage clock wins; storage stays ours (it covers the reply too).
    own = {k: v for k, v in (context.get("stages_ms") or {}).items()
           if k != "storage" and isinstance(v, (int, float))}
    stages = {**stages, **own}
    ids = context.get("message_ids") or []
    problems = []
    if not context:
        problems.append("no stored context")
    elif reply.user_message_id not in ids:
        problems.append("pending user message id not in the prompt's message_ids")
    if sent_last is not None and user_text not in sent_last:
        problems.append("the prompt's last message is not the pending question")
    return {"turn": index, "ref": turn.ref, "session": session, "status": reply.status,
            "user_message_id": reply.user_message_id, "reply_message_id": reply.message_id,
            "prompt_tokens": stored.prompt_tokens if stored is not None else None,
            "context_tokens": context.get("total_tokens"), "budget": context.get("budget"),
            "blocks": _blocks(context), "history_messages": context.get("history_messages"),
            "dropped_messages": context.get("dropped_messages"),
            "memory_items": len(context.get("memory_ids") or []),
            "pending_ok": not problems, "problems": problems, "stages_ms": stages}


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": round(pick(0.5), 3), "p95": round(pick(0.95), 3), "max": round(ordered[-1], 3),
            "mean": round(statistics.fmean(values), 3)}


def _latency(records: Sequence[dict]) -> dict[str, dict[str, float]]:
    seen = {s for r in records for s in r["stages_ms"]}
    order = [s for s in STAGES if s in seen] + sorted(seen - set(STAGES))
    return {s: _percentiles([r["stages_ms"][s] for r in records if s in r["stages_ms"]]) for s in order}


def token_summary(records: Sequence[dict], checkpoints: Sequence[int] = (50, 100, 300, 600)) -> dict:
    """Prompt tokens at checkpoint turns, mean per block, and flatness: the mean over the
    last sixth of the turns against the mean over turns n/6..n/3 (the window is full by
    then, so growth after it is what "flat" rules out)."""
    totals = [r["prompt_tokens"] or 0 for r in records]
    names = sorted({b for r in records for b in r["blocks"]})
    n = len(records)
    sixth = max(1, n // 6)
    early, late = totals[sixth: 2 * sixth] or totals, totals[-sixth:] or totals
    ratio = None  # too few turns for two windows to mean anything
    if n >= 12 and statistics.fmean(early) > 0:
        ratio = statistics.fmean(late) / statistics.fmean(early)
    return {
        "blocks": names,
        "at_turn": {str(t): totals[t - 1] for t in checkpoints if t <= n},
        "mean_by_block": {b: round(statistics.fmean(r["blocks"].get(b, 0) for r in records), 1)
                          for b in names} if records else {},
        "turns_using": {b: sum(1 for r in records if r["blocks"].get(b, 0) > 0) for b in names},
        "flatness": {"early_turns": [sixth + 1, 2 * sixth], "late_turns": [n - sixth + 1, n],
                     "early_mean": round(statistics.fmean(early), 1) if early else None,
                     "late_mean": round(statistics.fmean(late), 1) if late else None,
                     "ratio": round(ratio, 4) if ratio is not None else None},
        "max": max(totals, default=0),
    }


def _ask_probes(bot: Assistant, probes: Sequence[Probe], ids: dict[str, int], user: str,
                run: str, replies: ScriptedReplies) -> dict:
    """Each probe in a fresh session (so only memory can bring the evidence back), with
    indexing detached so probes do not become memories of each other."""
    items: list[dict[str, Any]] = []
    skipped = 0
    recorder, bot.recorder = bot.recorder, None
    store = cast(Any, bot.store)  # its outbox writes index/facts jobs with each message
    outbox, store.outbox = getattr(store, "outbox", None), None
    try:
        for n, probe in enumerate(probes):
            if not all(r in ids for r in probe.evidence):
                skipped += 1  # evidence beyond --limit (or rejected by a guard): not scorable
                continue
            evidence = {ids[r] for r in probe.evidence}
            replies.next = "Noted."
            session = f"{run}-probe-{n}"
            try:
                reply = bot.chat(probe.question, session_id=session, user_id=user)
            except InputRejected:
                skipped += 1
                continue
            stored = _stored_reply(bot, user, session, reply.message_id)
            context = (stored.context if stored else None) or {}
            shown = set(context.get("memory_ids") or [])
            items.append({"question": probe.question, "category": probe.category,
                          "evidence": len(evidence), "found": len(evidence & shown),
                          "recall": len(evidence & shown) / len(evidence),
                          "memory_tokens": int(context.get("memory_tokens") or 0)})
    finally:
        bot.recorder, store.outbox = recorder, outbox
    by_cat: dict[str, list[float]] = {}
    for item in items:
        by_cat.setdefault(item["category"], []).append(item["recall"])
    recall = {"all": statistics.fmean(i["recall"] for i in items) if items else 0.0,
              **{c: statistics.fmean(v) for c, v in sorted(by_cat.items())}}
    tokens = [i["memory_tokens"] for i in items]
    return {"asked": len(items), "skipped": skipped, "recall": recall, "items": items,
            "memory_tokens": {"mean": round(statistics.fmean(tokens), 1) if tokens else 0.0,
                              "max": max(tokens, default=0)}}


def _play(bot: Assistant, store: TimedStore, clock: Clock, turn: ReplayTurn, index: int,
          session: str, user: str) -> dict:
    """Send one turn, drain the stream, and read back what was stored."""
    started = time.perf_counter()
    stream = bot.stream(turn.content, session_id=session, user_id=user)  # may raise InputRejected
    streamed = time.perf_counter()
    for _ in stream:
        pass
    done = time.perf_counter()
    reply = stream.reply
    assert reply is not None  # set once the stream is drained
    stored = _stored_reply(bot, user, session, reply.message_id)
    pending = store.last_user
    user_text = pending.content if pending and pending.id == reply.user_message_id else turn.content
    return _turn_record(index, turn, session, reply, stored, stages_ms(clock, streamed, done, started),
                        clock.last_message, user_text)


def run_replay(script: Script, settings: Settings, options: ReplayOptions | None = None,
               *, probes: Sequence[Probe] = ()) -> dict:
    """Replay ``script`` through a real ``Assistant`` on ``settings``' stores and return
    the report as a JSON-ready dict (``assistant.replay.report`` writes it out)."""
    from tqdm import tqdm

    from memory.db import open_engine

    options = options or ReplayOptions()
    clock, replies, user = Clock(), ScriptedReplies(), options.user_id
    turns = script.turns[: options.limit] if options.limit else script.turns
    run = uuid.uuid4().hex[:8]  # session keys never collide with an earlier replay's
    store = TimedStore(open_engine(settings.resolved_database_url), clock)
    if options.model == "scripted":
        base: ChatModel = ScriptedModel(fn=replies, model="replay", context_window=options.context_window)
    else:
        base = build_model(settings)
    system = base.count_tokens([SystemMessage(content=with_preamble(settings.system_prompt))])
    try:
        check_window(settings, base.context_window, system)
    except ContextWindowTooSmall:
        store.engine.dispose()
        raise
    records: list[dict] = []
    snapshots: list[dict] = []
    rejected: list[dict] = []
    ids_by_ref: dict[str, int] = {}
    tables: dict[str, Table] = {}
    started_at, wall = datetime.now(UTC), time.perf_counter()
    try:
        with Assistant(settings, model=TimedModel(base, clock), store=store) as bot:
            for index, turn in enumerate(tqdm(turns, desc="replay", unit="turn",
                                              disable=not options.progress), 1):
                store.stamp = _aware(turn.timestamp)
                replies.next = turn.reply or default_reply(turn.content)
                clock.reset()
                try:
                    record = _play(bot, store, clock, turn, index, f"{run}-{turn.session}", user)
                except InputRejected as exc:
                    rejected.append({"turn": index, "ref": turn.ref, "reason": exc.user_message})
                else:
                    records.append(record)
                    ids_by_ref[turn.ref] = record["user_message_id"]
                if index % options.flush_every == 0 or index == len(turns):
                    bot.flush()  # let indexing, summaries and fact jobs catch up
                    snapshots.append({"turn": index, "counts": memory_counts(store.engine, user, tables)})
            store.stamp = None
            probe_report = _ask_probes(bot, probes, ids_by_ref, user, run, replies) if probes else None
            final = memory_counts(store.engine, user, tables)
    finally:
        store.engine.dispose()
    return {
        "meta": {"source": script.source, "format": script.kind, "conversation": script.conversation,
                 "model": base.label, "user_id": user, "run": run, "turns": len(records),
                 "sessions": len({t.session for t in turns}), "flush_every": options.flush_every,
                 "context_window": base.context_window, "started_at": started_at.isoformat(),
                 "duration_s": round(time.perf_counter() - wall, 2),
                 "unpaired_replies": script.unpaired_replies, "rejected": rejected,
                 "skipped_turns": dict(script.skipped_turns)},
        "tokens": token_summary(records),
        "turns": records,
        "latency_ms": _latency(records),
        "memory": {"tables": final, "snapshots": snapshots},
        "pending_question": {"checked": len(records),
                             "violations": [{"turn": r["turn"], "ref": r["ref"], "problems": r["problems"]}
                                            for r in records if not r["pending_ok"]]},
        "probes": probe_report,
    }
