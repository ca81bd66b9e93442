"""Issue 17: memory that reaches the prompt — what is worth indexing, neighbour windows in
the product path, collapsed near-duplicates, budgets that follow the window, bad input."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from assistant.errors import ContextWindowTooSmall, ReplayFormatError
from assistant.replay.inputs import load_probes, load_script
from assistant.settings import Settings
from memory.context_split import check_window, plan_split
from memory.memblock import render_block
from memory.recall import TurnMemory, _shown_ids
from memory.retrieval import HybridRetriever, MemoryHit, MemoryItem
from memory.store import StoredMessage
from memory.vectors import open_chroma
from memory.worth import is_echo, worth_indexing


def test_echo_and_acknowledgement_are_not_worth_a_slot() -> None:
    user = "Caroline: I went to the LGBTQ support group yesterday and it was powerful."
    assert is_echo("Noted: Caroline: I went to the LGBTQ support group yesterday and it …", user)
    assert is_echo("Got it!", user)
    assert not is_echo("That sounds powerful. Which group was it, and will you go again?", user)
    assert worth_indexing("user", user) and not worth_indexing("user", "   ")
    assert not worth_indexing("assistant", "Noted: " + user, user)
    assert worth_indexing("assistant", "You told me your sister lives in Lima.", user)


def _msg(i: int, role: str, text: str, session: str = "s1") -> StoredMessage:
    return StoredMessage(id=i, session_id=session, user_id="ann", role=role, content=text,
                         status="ok", created_at=datetime(2024, 5, 1, 10, i))


def test_turn_memory_skips_echoes_and_shows_neighbour_windows(tmp_path: Path) -> None:
    turns = TurnMemory(HybridRetriever(open_chroma(tmp_path / "chroma")), k=10)
    lines = ["I adopted a grey cat called Pixel last spring.", "She sleeps on my keyboard a lot.",
             "My sister Maria lives in Lima and teaches maths.", "We speak every Sunday evening."]
    messages = []
    for n, text in enumerate(lines):
        messages += [_msg(2 * n + 1, "user", text), _msg(2 * n + 2, "assistant", "Noted: " + text)]
    turns.add(messages[:4])
    turns.add(messages[4:])  # a second batch continues the session's positions
    retriever = turns.retriever
    assert retriever.count("ann") == 4  # the four echoes took no slot
    assert [retriever.seq_of("ann", f"msg-{i}") for i in (1, 3, 5, 7)] == [0, 1, 2, 3]
    recalled = turns.recall("ann", "Where does Maria live?", token_budget=400)
    assert 5 in recalled.message_ids  # the hit ...
    assert {3, 7} & set(recalled.message_ids)  # ... with a neighbour turn of its window
    assert not {2, 4, 6, 8} & set(recalled.message_ids)
    turns.add(messages[4:5])  # re-indexed (catch-up): keeps its place
    assert retriever.seq_of("ann", "msg-5") == 2 and retriever.count("ann") == 4


def test_near_duplicates_collapse_into_one_item_citing_all_sources() -> None:
    day = datetime(2024, 5, 1, 9, 0)
    a = MemoryItem("msg-3", "User: my flight to Oslo leaves on Friday at 9", timestamp=day)
    b = MemoryItem("msg-9", "User: My flight to Oslo leaves on Friday at 9!", timestamp=day)
    c = MemoryItem("msg-11", "User: the hotel is near the harbour", timestamp=day)
    text = render_block([MemoryHit(a, 3.0), MemoryHit(b, 2.0), MemoryHit(c, 1.0)],
                        token_budget=500, fill=True)
    assert text.count("flight to Oslo") == 1 and "also msg-9" in text
    assert _shown_ids(text) == [3, 9, 11]


def test_fill_passes_over_an_entry_that_does_not_fit() -> None:
    day = datetime(2024, 5, 1, 9, 0)
    long = MemoryItem("msg-1", "User: " + "very long story " * 60, timestamp=day)
    short = MemoryItem("msg-2", "User: I like tea", timestamp=day)
    hits = [MemoryHit(long, 2.0), MemoryHit(short, 1.0)]
    assert render_block(hits, token_budget=60) == ""  # prefix rule: the long one ends it
    assert "msg-2" in render_block(hits, token_budget=60, fill=True)


def test_memory_budget_follows_the_window() -> None:
    settings = Settings()
    small = plan_split(settings, 2048, 60)
    large = plan_split(settings, 8192, 60)
    assert small.memory <= settings.memory_budget_tokens and small.memory_cap == 400
    assert large.memory == min(int((8192 - 256 - 60) * 0.2), settings.memory_max_tokens)
    assert large.memory > settings.memory_budget_tokens
    assert plan_split(settings, 8192, 60, memory=False).memory_cap == 0


def test_window_smaller_than_the_system_prompt_is_a_clear_error() -> None:
    with pytest.raises(ContextWindowTooSmall, match="cannot hold the system prompt"):
        check_window(Settings(), 200, 60)
    check_window(Settings(), 2048, 60)


def test_replay_refuses_a_tiny_window_with_one_line(tmp_path: Path, capsys) -> None:
    from assistant.cli import main

    log = tmp_path / "chat.jsonl"
    log.write_text(json.dumps({"role": "user", "content": "hello there"}) + "\n")
    rc = main(["replay", str(log), "--context-window", "200", "--no-progress",
               "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")])
    out = capsys.readouterr()
    assert rc == 2 and "cannot hold the system prompt" in out.out + out.err
    assert "Traceback" not in out.out + out.err and not (tmp_path / "out").exists()


def _locomo(tmp_path: Path, turns: list[dict]) -> Path:
    path = tmp_path / "conv.json"
    path.write_text(json.dumps([{
        "sample_id": "c1", "qa": [{"question": "Where?", "answer": "x", "evidence": ["D1:2"],
                                   "category": 4}],
        "conversation": {"speaker_a": "A", "speaker_b": "B",
                         "session_1_date_time": "1:56 pm on 8 May, 2023", "session_1": turns}}]))
    return path


def test_locomo_empty_turns_are_a_counted_skip_and_duplicates_an_error(tmp_path: Path) -> None:
    script = load_script(_locomo(tmp_path, [
        {"speaker": "A", "dia_id": "D1:1", "text": ""},
        {"speaker": "B", "dia_id": "D1:2", "text": "I live in Lima."}]))
    assert [t.ref for t in script.turns] == ["D1:2"] and dict(script.skipped_turns) == {"empty": 1}
    with pytest.raises(ReplayFormatError, match="duplicate dia_id"):
        load_script(_locomo(tmp_path, [{"speaker": "A", "dia_id": "D1:1", "text": "hi"},
                                       {"speaker": "B", "dia_id": "D1:1", "text": "hi again"}]))
    with pytest.raises(ReplayFormatError, match="no turn with text"):
        load_script(_locomo(tmp_path, [{"speaker": "A", "dia_id": "D1:1", "text": " "}]))


def test_probe_file_with_unknown_evidence_is_a_clear_error(tmp_path: Path) -> None:
    script = load_script(_locomo(tmp_path, [{"speaker": "A", "dia_id": "D1:2", "text": "hi"}]))
    probes = tmp_path / "probes.jsonl"
    probes.write_text(json.dumps({"question": "Where?", "evidence": ["D9:9"]}) + "\n")
    with pytest.raises(ReplayFormatError, match="'D9:9' names no user turn"):
        load_probes(probes, script)


def test_bench_through_assistant_reports_the_product_path(tmp_path: Path) -> None:
    """The bench drives the replay (the real Assistant), so its product figure is the
    replay's probe recall; on a tiny conversation the evidence reaches the prompt."""
    from assistant.bench.locomo import through_assistant

    lines = ["I adopted a grey cat called Pixel.", "Pixel sounds lovely!",
             "My sister Maria moved to Lima to teach maths.", "Lima is far away.",
             "I started pottery classes on Tuesdays.", "Pottery is relaxing."]
    turns = [{"speaker": "AB"[i % 2], "dia_id": f"D1:{i + 1}", "text": t} for i, t in enumerate(lines)]
    path = _locomo(tmp_path, turns)
    raw = json.loads(path.read_text())
    raw[0]["qa"] = [{"question": "Where did Maria move?", "answer": "Lima", "evidence": ["D1:3"],
                     "category": 4},
                    {"question": "What is the cat called?", "answer": "Pixel", "evidence": ["D1:1"],
                     "category": 1}]
    path.write_text(json.dumps(raw))
    result = through_assistant(path, context_window=2048)
    assert result["asked"] == 2 and result["skipped"] == 0
    assert result["recall"]["all"] == 1.0 and set(result["recall"]) == {"1", "4", "all"}
    assert 0 < result["memory_tokens"]["mean"] <= 400
