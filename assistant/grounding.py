"""Grounded turns, the orchestrator's side: default corpus, citation re-ask, confidence
and review. Kept here so the turn loop only makes a few calls.

* ``default_documents``: the ``Corpus`` an ``Assistant()`` answers from when one exists
  (the sample corpus of the project's docs is ingested by ``lastmile serve``).
* ``reask_once``: under the ``reask`` policy, a reply whose cited sentences fail the
  check is re-asked ONCE, naming the failures (ledger purpose ``reask``); the stream
  restarts with the new answer. A failed re-ask keeps the first answer.
* ``assess`` / ``submit_review``: the answer's confidence (groundedness, a fallback to
  the local model after a remote one, validation failures) and, below
  ``LASTMILE_REVIEW_THRESHOLD``, a review item; the reply is then ``pending`` review.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Generator
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

from assistant.errors import LastmileError
from assistant.layers.consume import StreamFold, consume
from assistant.providers.base import ModelRequest, Usage
from assistant.records import ContextReport
from assistant.reply import Restart
from assistant.reply_record import ReplyRecord
from assistant.settings import Settings
from guardrails.base import GuardChain, GuardContext
from guardrails.grounding import BAD_VERDICTS, CitationGuard, failures_prompt
from guardrails.judging import Judge
from guardrails.review_gate import worth_review

__all__ = ["SAMPLE_COLLECTION", "assess", "citation_guard", "default_documents", "reask_once",
           "reply_fields", "reply_record", "sample_corpus_paths", "submit_review"]

log = logging.getLogger(__name__)
SAMPLE_COLLECTION = "lastmile-docs"
FALLBACK_CONFIDENCE = 0.3  # the tiny local model answered for a remote one
VALIDATION_CONFIDENCE = 0.2


def sample_corpus_paths() -> list[Path]:
    """The project's own docs (README.md, docs/*.md) when they ship with the code."""
    root = Path(__file__).resolve().parent.parent
    paths = [*sorted((root / "docs").glob("*.md")), root / "README.md"]
    return [p for p in paths if p.is_file()]


def default_documents(settings: Settings, engine: Any, *, ingest_sample: bool = False) -> Any:
    """A ``Corpus`` over this database and Chroma, or ``None`` when no corpus exists.
    ``ingest_sample`` first ingests the sample corpus (fast when unchanged)."""
    from memory.corpus import Corpus
    from memory.vectors import open_chroma

    if engine is None:
        return None
    sample = ingest_sample and settings.sample_corpus and sample_corpus_paths()
    if not sample and not _any_documents(engine):
        return None  # no corpus: no Chroma collection, no retrieval cost per turn
    corpus = Corpus.from_settings(engine, open_chroma(settings.chroma_path, settings.chroma_url), settings)
    if sample:
        report = corpus.ingest(sample, collection=SAMPLE_COLLECTION)
        log.info("sample corpus: %s", report.summary().splitlines()[0])
    return corpus if _any_documents(engine) else None


def _any_documents(engine: Any) -> bool:
    from sqlalchemy import select

    from memory.models import Chunk

    with engine.connect() as conn:
        return conn.execute(select(Chunk.id).limit(1)).first() is not None


def citation_guard(chain: GuardChain, settings: Settings, judge: Judge | None = None) -> CitationGuard:
    """The chain's citation guard; one with the configured policy, post-hoc attribution
    and judge (``LASTMILE_CITATION_POLICY``, ``LASTMILE_ATTRIBUTE_CITATIONS``,
    ``LASTMILE_VERIFY_*``) is appended when it has none, so grounded answers are always
    checked (pass your own to configure it)."""
    found = [g for g in chain.guards if isinstance(g, CitationGuard)]
    if found:
        return found[0]
    guard = CitationGuard(settings.citation_policy, attribute=settings.attribute_citations, judge=judge,
                          judge_band=(settings.verify_band_low, settings.verify_band_high),
                          judge_max_calls=settings.verify_max_calls,
                          judge_timeout_s=settings.verify_timeout_s)
    chain.guards.append(guard)
    return guard


def reask_once(guard: CitationGuard | None, model: Any, request: ModelRequest, ctx: GuardContext,
               out: Any) -> Generator[str, None, None]:
    """Under the ``reask`` policy, re-ask once when cited sentences fail; streams a
    ``Restart`` and the new answer into ``out.parts``."""
    if guard is None or guard.policy != "reask" or out.status != "ok":
        return
    first = "".join(out.parts)
    try:
        result = guard.check(ctx, first)
    except Exception:  # noqa: BLE001 - the guard reports it again after the turn
        return
    bad = [c for c in (result[1] if result else []) if c.verdict in BAD_VERDICTS]
    if not bad:
        return
    ctx.reasked = len(bad)
    follow = ModelRequest([*request.messages, AIMessage(content=first),
                           HumanMessage(content=failures_prompt(bad))],
                          max_tokens=request.max_tokens, temperature=request.temperature,
                          metadata={**request.metadata, "purpose": "reask", "cache": False})
    yield Restart(discarded=first, reason="some cited sentences were not supported by their "
                  "sources; asking the model to correct them", provider=out.provider)
    second = StreamFold(provider=out.provider)
    try:
        yield from consume(model, follow, second)
    except LastmileError as exc:
        log.warning("citation re-ask failed (%s); keeping the first answer", exc)
        second.parts.clear()
    finally:
        out.provider = second.provider
    parts, usage, finish = second.parts, second.usage, second.finish_reason
    if not "".join(parts).strip():
        ctx.validation_errors.append("re-ask failed")
        yield Restart(discarded="".join(parts), reason="the correction failed; showing the first answer",
                      provider=out.provider)
        yield first
        return
    out.parts[:] = parts
    out.finish_reason = finish or out.finish_reason
    if usage is not None and out.usage is not None:  # the turn's usage covers both calls
        usage = Usage(out.usage.prompt_tokens + usage.prompt_tokens,
                      out.usage.completion_tokens + usage.completion_tokens)
    out.usage = usage or out.usage


def assess(ctx: GuardContext, out: Any) -> tuple[float | None, list[str]]:
    """The answer's confidence (``None``: nothing bears on it) and what lowered it."""
    if out.status != "ok":
        return None, []
    confidence: float | None = None
    reasons: list[str] = []
    grounded = ctx.groundedness
    if grounded is not None and ctx.citation_checks is not None:
        confidence = float(grounded)
        if grounded < 1:
            reasons.append(f"weak grounding: {grounded:.0%} of claims supported by their sources")
    if ctx.destination == "remote" and str(out.provider).split(":")[0] == "local":
        confidence = min(1.0 if confidence is None else confidence, FALLBACK_CONFIDENCE)
        reasons.append(f"answered by the local fallback model ({out.provider}) after the remote "
                       "provider failed")
    for error in ctx.validation_errors:
        confidence = min(1.0 if confidence is None else confidence, VALIDATION_CONFIDENCE)
        reasons.append(f"validation failed: {error}")
    return (None if confidence is None else round(confidence, 4)), reasons


def reply_record(ctx: GuardContext, report: ContextReport, confidence: float | None, *,
                 notice: str | None, reply_reserve: int) -> ReplyRecord:
    """What the stored reply keeps of this turn (``messages.context``), for history views."""
    return ReplyRecord(report=dataclasses.replace(report, reply_reserve=reply_reserve),
                       citations=None if ctx.citations is None else tuple(ctx.citations),
                       checks=None if ctx.citation_checks is None else tuple(ctx.citation_checks),
                       confidence=confidence, stages_ms=dict(ctx.stages_ms),
                       guards_ms=dict(ctx.guards_ms), notice=notice)


def submit_review(queue: Any, settings: Settings, ctx: GuardContext, question: str, stored: Any,
                  confidence: float | None, reasons: list[str]) -> str | None:
    """Queue a low-confidence answer; ``"pending"`` when queued (also noted in
    ``ctx.review_status``). Never fails the turn."""
    ctx.confidence = confidence
    if queue is None or confidence is None or confidence >= settings.review_threshold:
        return None
    if not ctx.validation_errors and not worth_review(
            stored.content, ctx.citation_checks, {sid: ref.text for sid, ref in ctx.sources.items()}):
        return None  # chit-chat, a question back, no factual claim: nothing to review
    try:
        queue.submit(kind="answer", user_id=ctx.user_id, session_id=ctx.session_id,
                     message_id=stored.id, question=question, content=stored.content,
                     reason="; ".join(reasons) or "low confidence", confidence=confidence,
                     details={"provider": stored.provider,
                              "citations": [dataclasses.asdict(c) for c in ctx.citations or ()]})
    except Exception:
        log.warning("could not queue reply %s for review", stored.id, exc_info=True)
        return None
    ctx.review_status = "pending"
    return "pending"


def reply_fields(ctx: GuardContext) -> dict[str, Any]:
    """``Reply`` keyword arguments for the grounding of this turn."""
    return {"citations": tuple(ctx.citations or ()), "checks": tuple(ctx.citation_checks or ()),
            "confidence": ctx.confidence, "review_status": ctx.review_status}
