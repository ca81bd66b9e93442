"""Run a golden suite through the real ``Assistant`` and judge every expectation.

A run gets its own scratch data dir (SQLite, embedded Chroma): the suite's documents,
facts and conversations never touch the configured database, and two runs of one suite
start from the same empty state. Everything else is the deployment's: its settings
(environment, plus the suite's ``settings``), guards, memory, grounding, ledger — only
the model is scripted when the suite (or ``--model``) says so. A report is plain JSON;
``regressions`` compares it with a saved baseline (turns that passed there and fail now,
and new turns that fail), which is what gates a prompt or provider change in CI.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from sqlalchemy import func, select

from assistant.errors import ConfigurationError, InputRejected
from assistant.ops.suite import Case, Expect, Suite
from assistant.reply import Reply
from assistant.settings import Settings
from memory.models import ProviderCall, utcnow

__all__ = ["TurnResult", "check_turn", "regressions", "run_suite", "scripted_answer"]

_LABEL = re.compile(r"^\[(\d+)\] (.+?)(?: \(([^()]*)\))?(?: \[[^\]]*\])?$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{source:([^{}]+)\}")


@dataclass
class TurnResult:
    """One turn's outcome; ``failures`` name each broken expectation."""

    case: str
    turn: int
    passed: bool
    failures: list[str]
    status: str
    latency_ms: float
    cost_usd: float
    groundedness: float | None
    verdicts: list[str] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)
    text: str = ""

    @property
    def key(self) -> str:
        return f"{self.case}#{self.turn}"


def scripted_answer(template: str, messages: Sequence[BaseMessage]) -> str:
    """``template`` with each ``{source:NAME}`` replaced by the number the prompt gave
    the source titled NAME (or from the file NAME): citations land where a real model's would."""
    system = str(messages[0].content) if messages else ""
    numbers: dict[str, str] = {}
    for number, title, where in _LABEL.findall(system):
        numbers.setdefault(title.strip().lower(), number)
        if where:
            numbers.setdefault(Path(where.split(",")[0].strip()).name.lower(), number)
    return _PLACEHOLDER.sub(lambda m: numbers.get(m.group(1).strip().lower(), "?"), template)


def _names(citation: Any) -> set[str]:
    return {citation.title.lower(), Path(citation.path or "").name.lower()} - {""}


def check_turn(expect: Expect, reply: Reply, cost_usd: float) -> list[str]:
    """What ``reply`` breaks of ``expect`` (empty: it passes)."""
    failures: list[str] = []
    if reply.status != expect.status:
        failures.append(f"status {reply.status}, expected {expect.status}")
    low = reply.text.lower()
    failures += [f"does not contain {s!r}" for s in expect.contains if s.lower() not in low]
    failures += [f"contains {s!r}" for s in expect.not_contains if s.lower() in low]
    good = [c for c in reply.citations if c.verdict in ("supported", "partial")]
    failures += [f"does not cite {name!r}" for name in expect.cites
                 if not any(name.lower() in _names(c) for c in good)]
    if expect.verdicts is not None:
        claims = [c for c in reply.checks if c.claim]
        if not claims:
            failures.append("no sentence was checked against a source")
        bad = [c for c in claims if c.verdict not in expect.verdicts and c.status not in expect.verdicts]
        failures += [f"sentence {c.text[:60]!r} is {c.status or c.verdict}" for c in bad]
    if expect.max_latency_ms is not None and reply.latency_ms > expect.max_latency_ms:
        failures.append(f"latency {reply.latency_ms:.0f} ms > {expect.max_latency_ms:.0f} ms")
    if expect.max_cost_usd is not None and cost_usd > expect.max_cost_usd:
        failures.append(f"cost ${cost_usd:.6f} > ${expect.max_cost_usd:.6f}")
    return failures


def run_suite(suite: Suite, settings: Settings, *, model: str | None = None,
              on_turn: Callable[[TurnResult], None] | None = None) -> dict[str, Any]:
    """Run every case; returns the report (``results`` per turn, ``passed``/``failed``)."""
    mode = model or suite.model
    started, begun = utcnow(), time.perf_counter()
    results: list[TurnResult] = []
    with tempfile.TemporaryDirectory(prefix="lastmile-eval-") as scratch:
        try:
            cfg = Settings.model_validate({**settings.model_dump(), **suite.settings,
                                           "data_dir": Path(scratch), "database_url": None,
                                           "chroma_url": None, "canary_suite": None,
                                           "drift_every_s": 0})
        except ValueError as exc:
            raise ConfigurationError(f"suite {suite.name}: settings: {exc}") from None
        for index, case in enumerate(suite.cases):
            results += _run_case(case, index, cfg, mode, Path(scratch), on_turn)
    failed = sum(not r.passed for r in results)
    return {"suite": suite.name, "model": mode, "started_at": started.isoformat(),
            "duration_ms": round((time.perf_counter() - begun) * 1000, 1),
            "passed": len(results) - failed, "failed": failed,
            "results": [asdict(r) | {"key": r.key} for r in results]}


def _run_case(case: Case, index: int, cfg: Settings, mode: str, scratch: Path,
              on_turn: Callable[[TurnResult], None] | None) -> list[TurnResult]:
    from assistant.orchestrator import Assistant
    from assistant.providers import ScriptedModel
    from memory.corpus import Corpus
    from memory.db import open_engine
    from memory.vectors import open_chroma

    user = f"eval{index}-{case.user}"[:128]
    current: dict[str, str | None] = {"reply": None}

    def answer(messages: Sequence[BaseMessage]) -> str:
        template = current["reply"]
        return scripted_answer(template, messages) if template else f"Noted: {messages[-1].content}"

    engine = open_engine(cfg.resolved_database_url)
    documents = None
    if case.documents:
        folder = scratch / "documents" / str(index)
        folder.mkdir(parents=True)
        for doc in case.documents:
            (folder / doc.name).write_text(doc.text, encoding="utf-8")
        documents = Corpus.from_settings(engine, open_chroma(cfg.chroma_path), cfg)
        documents.ingest([folder], collection="eval", user_id=user)
    scripted = ScriptedModel(fn=answer) if mode == "scripted" else None
    out: list[TurnResult] = []
    try:
        with Assistant(cfg, model=scripted, documents=documents) as bot:
            for n, fact in enumerate(case.facts):
                bot.chat(fact, session_id=f"setup-{n}", user_id=user)
            if case.facts:
                bot.flush()
            for number, turn in enumerate(case.turns, start=1):
                current["reply"] = turn.reply
                result = _turn(bot, engine, case, number, turn.user, turn.expect, user)
                out.append(result)
                if on_turn is not None:
                    on_turn(result)
    finally:
        engine.dispose()
    return out


def _turn(bot: Any, engine: Any, case: Case, number: int, text: str, expect: Expect,
          user: str) -> TurnResult:
    try:
        reply = bot.chat(text, session_id=f"case-{case.id}"[:128], user_id=user, cache=False)
    except InputRejected as exc:
        return TurnResult(case.id, number, False, [f"input rejected: {exc.user_message}"], "rejected",
                          0.0, 0.0, None)
    with engine.connect() as conn:
        cost = float(conn.scalar(select(func.coalesce(func.sum(ProviderCall.cost_usd), 0.0))
                                 .where(ProviderCall.turn_id == reply.user_message_id)) or 0.0)
    failures = check_turn(expect, reply, cost)
    claims = [c for c in reply.checks if c.claim]
    grounded = round(sum(c.verdict == "supported" for c in claims) / len(claims), 4) if claims else None
    return TurnResult(case.id, number, not failures, failures, reply.status, round(reply.latency_ms, 1),
                      round(cost, 6), grounded, verdicts=[c.status or c.verdict for c in claims],
                      cited=sorted({c.title for c in reply.citations}), text=reply.text[:500])


def regressions(report: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    """Turns failing now that passed in ``baseline`` or are not in it (every failure
    without a baseline)."""
    before = {r["key"]: r["passed"] for r in (baseline or {}).get("results", [])}
    return [r["key"] for r in report["results"] if not r["passed"] and before.get(r["key"], True)]
