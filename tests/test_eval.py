"""``lastmile eval`` as CI runs it (real subprocesses, exit codes, the JSON report) and the
same suite as a canary inside a process with job workers. The suite runs through the
real Assistant (guards, retrieval, citation checks, ledger) with the scripted model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant import Assistant, ScriptedModel, Settings
from assistant.errors import ConfigurationError
from assistant.ops.evals import regressions, scripted_answer
from assistant.ops.suite import load_suite
from memory.db import open_engine
from ui import dashboard

LASTMILE = str(Path(sys.executable).with_name("lastmile"))
EXAMPLE = Path(__file__).parents[1] / "assistant" / "ops" / "suites" / "example.yaml"


def _eval(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    full.update({"LASTMILE_DATA_DIR": str(tmp_path / "prod"), **env})
    return subprocess.run([LASTMILE, "eval", *args], capture_output=True, text=True, env=full,
                          timeout=300, cwd=tmp_path)


def test_the_shipped_suite_passes_and_a_breaking_configuration_exits_1(tmp_path: Path) -> None:
    good = _eval([str(EXAMPLE), "--report", "report.json", "--save-baseline", "base.json"], tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failed"] == 0 and report["passed"] == 4 and report["regressions"] == []
    assert "ferry-cited" in good.stdout and "pass" in good.stdout  # the table
    assert not (tmp_path / "prod").exists()  # a scratch data dir, never the configured one
    # No documents in the prompt: the cited answers lose their sources (one case breaks).
    broken = _eval([str(EXAMPLE), "--baseline", "base.json", "--json"], tmp_path,
                   LASTMILE_DOCUMENTS_MAX_TOKENS="0")
    assert broken.returncode == 1, broken.stderr
    out = json.loads(broken.stdout)
    assert out["regressions"] == ["ferry-cited#1", "ferry-cited#2"]
    failing = [r for r in out["results"] if not r["passed"]]
    assert all("does not cite" in "; ".join(r["failures"]) for r in failing)
    assert "2 regression(s)" in broken.stderr


def test_a_malformed_suite_fails_before_anything_runs_naming_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: typo\ncases:\n  - id: a\n    turns:\n      - user: hi\n        expect:\n"
                   "          contians: [x]\n")
    proc = _eval([str(bad)], tmp_path)
    assert proc.returncode == 2
    assert "bad.yaml:line 7: cases.0.turns.0.expect.contians: Extra inputs are not permitted" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "prod").exists()
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"id": "a", "turns": [{"user": "hi"}]}\n{"id": "b", "turns": [{"user": ""}]}\n')
    with pytest.raises(ConfigurationError, match=r"bad.jsonl:line 2: turns.0.user: String should have at"):
        load_suite(lines)
    lines.write_text('{"id": "a", "turns": [{"user": "hi", "expect": {"max_latency_ms": -1}}]}\n')
    with pytest.raises(ConfigurationError, match=r"line 1: turns.0.expect.max_latency_ms"):
        load_suite(lines)
    (tmp_path / "x.yaml").write_text("cases: [\n")
    with pytest.raises(ConfigurationError, match=r"x.yaml:line \d+: not valid YAML"):
        load_suite(tmp_path / "x.yaml")


def test_a_jsonl_suite_runs_with_its_header(tmp_path: Path) -> None:
    suite = tmp_path / "s.jsonl"
    suite.write_text('{"suite": {"name": "tiny"}}\n'
                     '{"id": "hello", "turns": [{"user": "Hi!", "reply": "Hello there.", '
                     '"expect": {"contains": ["hello"], "not_contains": ["bye"]}}]}\n')
    proc = _eval([str(suite), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["suite"] == "tiny" and [r["key"] for r in out["results"]] == ["hello#1"]


def test_regressions_count_only_turns_that_passed_before_or_are_new() -> None:
    now = {"results": [{"key": "a#1", "passed": False}, {"key": "b#1", "passed": False},
                       {"key": "c#1", "passed": True}, {"key": "d#1", "passed": False}]}
    before = {"results": [{"key": "a#1", "passed": True}, {"key": "b#1", "passed": False},
                          {"key": "c#1", "passed": True}]}
    assert regressions(now, before) == ["a#1", "d#1"]
    assert regressions(now, None) == ["a#1", "b#1", "d#1"]


def test_source_placeholders_become_the_prompts_numbers() -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    system = SystemMessage(content="SOURCES\n\n[1] Tower (kb/tower.md)\ntext\n\n[2] Ferry timetable "
                                   "(kb/ferry.md)\ntext")
    messages = [system, HumanMessage(content="q")]
    assert scripted_answer("A [{source:ferry.md}] B [{source:Tower}] C [{source:none}]",
                           messages) == "A [2] B [1] C [?]"


def test_the_canary_runs_inside_a_process_with_job_workers(settings: Settings) -> None:
    cfg = settings.model_copy(update={"canary_suite": EXAMPLE, "index_turns": False})
    with Assistant(cfg, model=ScriptedModel(["hi"])):
        engine = open_engine(cfg.resolved_database_url)
        deadline = time.monotonic() + 120
        while dashboard.canary_frame(engine).empty and time.monotonic() < deadline:
            time.sleep(0.5)
        history = dashboard.canary_frame(engine)
    engine.dispose()
    assert list(history[["suite", "passed", "failed"]].iloc[0]) == ["example", 4, 0]
