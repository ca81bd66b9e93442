"""``lastmile shadow`` on a recorded session (real subprocess, SQLite): recorded user turns
are replayed through a candidate chain and prompt; the report sets production and the
candidate side by side; production's history is untouched; each user's replay sees only
that user's turns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from assistant import Assistant, ScriptedModel, Settings
from assistant.cli.shadow import parse_since
from assistant.ops.shadow import divergence, recorded_turns
from memory.db import open_engine
from memory.models import Message

LASTMILE = str(Path(sys.executable).with_name("lastmile"))
ANN = ["My locker code is 4417.", "Which gym opens earliest?"]
BOB = ["What is my locker code?", "Book me a squash court for Friday."]


def _record(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "prod", index_turns=False)
    answer = ScriptedModel(fn=lambda messages: f"Production says: {messages[-1].content}")
    with Assistant(settings, model=answer) as bot:
        for text in ANN:
            bot.chat(text, session_id="gym", user_id="ann")
        for text in BOB:
            bot.chat(text, session_id="gym", user_id="bob")
    return settings


def _count(settings: Settings) -> int:
    engine = open_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(Message))
    engine.dispose()
    return int(n or 0)


def test_shadow_prints_production_and_candidate_side_by_side(tmp_path: Path) -> None:
    settings = _record(tmp_path)
    before = _count(settings)
    log = tmp_path / "candidate-prompts.jsonl"
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are the candidate prompt under test.")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(LASTMILE_DATA_DIR=str(tmp_path / "prod"), LASTMILE_INDEX_TURNS="false")
    proc = subprocess.run([LASTMILE, "shadow", "--candidate", f"scripted:log={log}", "--prompt", str(prompt),
                           "--since", "1d", "--report", str(tmp_path / "shadow.json")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for row in ("production", "candidate", "latency p50 ms", "groundedness", "cost USD",
                "divergence (mean)", "4 turns of 2 user(s)"):
        assert row in proc.stdout, row
    report = json.loads((tmp_path / "shadow.json").read_text())
    assert report["production"]["providers"] == ["scripted"] and report["candidate"]["ok"] == 4
    # The candidate echoes, production said "Production says: ...": close but not equal.
    assert all(0 < t["divergence"] < 1 for t in report["turns"])
    assert _count(settings) == before  # nothing written to production
    prompts = [json.loads(line)["messages"] for line in log.read_text().splitlines()]
    chat = [p for p in prompts if p[-1]["content"] in ANN + BOB]
    assert len(chat) == 4 and all("candidate prompt under test" in p[0]["content"] for p in chat)
    for p in chat:
        if p[-1]["content"] in BOB:  # bob's replay never sees ann's turns
            assert "4417" not in json.dumps(p)
    typo = subprocess.run([LASTMILE, "shadow", "--candidate", "opnai:gpt-4o", "--since", "1d"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert typo.returncode == 2 and "candidate 'opnai:gpt-4o'" in typo.stderr
    assert "Traceback" not in typo.stderr and _count(settings) == before


def test_recorded_turns_pair_each_question_with_production_reply(tmp_path: Path) -> None:
    settings = _record(tmp_path)
    engine = open_engine(settings.resolved_database_url)
    turns = recorded_turns(engine, parse_since("1d"))
    only_bob = recorded_turns(engine, parse_since("1d"), user_id="bob", limit=1)
    engine.dispose()
    assert [(t.user_id, t.text) for t in turns] == [("ann", q) for q in ANN] + [("bob", q) for q in BOB]
    assert all(t.reply == f"Production says: {t.text}" and t.provider == "scripted" for t in turns)
    assert [t.text for t in only_bob] == BOB[:1]
    assert divergence("a b c", "a b c") == 0 and divergence("a b", "c d") == 1
