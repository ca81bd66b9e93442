"""`lastmile replay`: a long conversation through the real Assistant (SQLite, Chroma,
scripted model) keeps its prompt flat, never loses the pending question, and reports it;
bad input files fail with one error naming the line or key and leave nothing behind."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.errors import ReplayFormatError
from assistant.replay.inputs import load_script, synthetic_turns

#: A tiny conversation in the LoCoMo format (ours: tests never depend on data outside the repo).
TINY_LOCOMO = Path(__file__).parent / "data" / "locomo_tiny.json"
PNG = b"\x89PNG\r\n\x1a\n"
WINDOW = 768  # scripted model window: 512 prompt tokens after the 256-token reply reserve
PLANTED = {3: "By the way, my cat is called Zorblax and she hates thunderstorms.",
           9: "I was born in Reykjavik, in a yellow house near the harbour."}


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _conversation(path: Path, turns: int) -> Path:
    records = synthetic_turns(turns)
    for turn, text in PLANTED.items():
        if turn > turns:
            continue
        records[2 * (turn - 1)]["content"] = text  # user line of that turn
        records[2 * (turn - 1)]["id"] = f"fact-{turn}"
    return _write_jsonl(path, records)


def _replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["replay", *args, "--json", "--no-progress"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


@pytest.fixture(scope="module")
def long_replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, Path, Path]:
    """One 300-turn replay shared by the assertions below (it is the slow part)."""
    import contextlib
    import io

    tmp = tmp_path_factory.mktemp("replay")
    conv = _conversation(tmp / "conv.jsonl", 300)
    probes = _write_jsonl(tmp / "probes.jsonl", [
        {"question": "What is the name of my cat?", "evidence": ["fact-3"], "category": "pets"},
        {"question": "Which city was I born in?", "evidence": ["fact-9"], "category": "origin"}])
    out, data = tmp / "report", tmp / "data"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(io.StringIO()):
        # Module scope runs before conftest's per-test clean environment: do its job here.
        for key in [k for k in os.environ if k.startswith("LASTMILE_") and "POSTGRES" not in k]:
            mp.delenv(key)
        mp.chdir(tmp)
        code = main(["replay", str(conv), "--out", str(out), "--context-window", str(WINDOW),
                     "--flush-every", "50", "--probes", str(probes), "--data-dir", str(data),
                     "--user", "tester", "--json", "--no-progress"])
    return code, json.loads(stdout.getvalue()), out, data


def test_long_replay_writes_markdown_png_and_json(long_replay: tuple[int, dict, Path, Path]) -> None:
    code, summary, out, _ = long_replay
    assert code == 0
    assert summary["report"] == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["latency.png", "memory.png", "report.json",
                                                     "report.md", "tokens.png"]
    for png in ("latency.png", "memory.png", "tokens.png"):
        assert (out / png).read_bytes().startswith(PNG) and (out / png).stat().st_size > 5000
    report = json.loads((out / "report.json").read_text())
    assert {"meta", "tokens", "turns", "latency_ms", "memory", "pending_question", "probes"} <= set(report)
    assert report["meta"]["turns"] == 300 and len(report["turns"]) == 300
    assert {"turn", "blocks", "prompt_tokens", "pending_ok", "stages_ms"} <= set(report["turns"][0])
    for stage in ("guards", "storage", "context", "model", "model_first_token", "verification", "total"):
        assert report["latency_ms"][stage]["p50"] >= 0, stage
    for turn in report["turns"]:  # the parts fit in the whole turn
        stages = turn["stages_ms"]
        assert stages["context"] + stages["model"] + stages["storage"] <= stages["total"] + 1, stages
    md = (out / "report.md").read_text()
    assert "![prompt tokens](tokens.png)" in md and "**0 violation(s)**" in md
    assert "| memory |" in md


def test_prompt_tokens_stay_flat_while_the_window_slides(long_replay: tuple[int, dict, Path, Path]) -> None:
    _, _, out, _ = long_replay
    turns = json.loads((out / "report.json").read_text())["turns"]
    tokens = [t["prompt_tokens"] for t in turns]
    assert all(0 < t <= WINDOW for t in tokens), max(tokens)
    early, late = tokens[49:100], tokens[249:300]
    assert sum(late) / len(late) <= 1.1 * sum(early) / len(early)
    assert turns[-1]["dropped_messages"] > 150  # the window slid (of the newest 200 scanned)
    assert turns[-1]["history_messages"] < 30


def test_pending_question_is_never_lost(long_replay: tuple[int, dict, Path, Path]) -> None:
    _, summary, out, _ = long_replay
    report = json.loads((out / "report.json").read_text())
    assert summary["pending_question"] == {"checked": 300, "violations": 0}
    assert report["pending_question"]["violations"] == []
    assert all(t["pending_ok"] and t["status"] == "ok" for t in report["turns"])


def test_memory_and_summary_blocks_do_their_job(long_replay: tuple[int, dict, Path, Path]) -> None:
    from assistant.settings import Settings

    out = long_replay[2]
    report = json.loads((out / "report.json").read_text())
    tokens = report["tokens"]
    assert tokens["turns_using"]["memory"] > 0 and tokens["mean_by_block"]["memory"] > 0
    assert any(t["memory_items"] > 0 for t in report["turns"])
    # Probes (asked in fresh sessions) get their planted evidence back from memory alone.
    probes = report["probes"]
    assert probes["asked"] == 2 and probes["skipped"] == 0
    assert probes["recall"]["all"] == 1.0, probes["items"]
    assert report["memory"]["tables"]["messages"] == {"rows": 600 + 2 * 2, "indexed": 600}
    if importlib.util.find_spec("memory.summary") and Settings().summarize_sessions:
        assert tokens["turns_using"].get("summary", 0) > 200
        late = [t["blocks"]["summary"] for t in report["turns"][200:]]
        assert min(late) > 0  # once turns left the window, every prompt carries the summary
        assert report["memory"]["tables"]["session_summaries"]["rows"] > 0


def test_replayed_turns_keep_their_timestamps(long_replay: tuple[int, dict, Path, Path]) -> None:
    from memory.db import open_engine
    from memory.store import ConversationStore

    _, summary, _, data = long_replay
    store = ConversationStore(open_engine(f"sqlite:///{data / 'lastmile.db'}"))
    session = f"{summary['meta']['run']}-main"
    history = store.history("tester", session)
    assert len(history) == 600
    expected = [r for r in synthetic_turns(300) if r["role"] == "user"]
    users = [m for m in history if m.role == "user"]
    assert users[10].created_at.replace(tzinfo=None) == datetime.fromisoformat(expected[10]["timestamp"])
    assert users[3 - 1].content == PLANTED[3]
    store.engine.dispose()


# --- the same rules on PostgreSQL (a shorter replay) -----------------------------------

def test_short_replay_on_each_database(database_url: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    conv = _conversation(tmp_path / "conv.jsonl", 24)
    code, summary, _ = _replay(capsys, str(conv), "--out", str(tmp_path / "r"), "--context-window",
                               "320", "--database-url", database_url)
    assert code == 0
    assert summary["pending_question"] == {"checked": 24, "violations": 0}
    assert summary["memory"]["messages"]["rows"] == 48
    assert summary["tokens"]["max"] <= 320


# --- bad input: one clear error, nothing written ---------------------------------------

@pytest.mark.parametrize(("lines", "needle"), [
    (['{"role": "user", "content": "hi"}', '{"role": "assistant", "content": "hello"}',
      '{"role": "user", "content": "oops"'], "line 3: not valid JSON"),
    (['{"role": "user", "content": "hi"}', '{"role": "user", "text": "no content"}'],
     "line 2: missing key 'content'"),
    (['{"role": "user", "content": "hi"}', "", '{"role": "user", "content": "a"}',
      '{"role": "robot", "content": "beep"}'], "line 4: unknown role 'robot'"),
    (['{"role": "user", "content": "hi", "timestamp": "yesterday"}'], "line 1: 'timestamp'"),
    (['["not", "an", "object"]'], "line 1: expected a JSON object"),
])
def test_malformed_jsonl_names_the_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], needle: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    code, summary, err = _replay(capsys, str(bad), "--out", str(out))
    assert code == 2 and summary == {}
    assert needle in " ".join(err.split()), err
    assert err.count("\n") <= 2  # one clear line, no traceback
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def _small_locomo() -> list[dict]:
    return json.loads(TINY_LOCOMO.read_text())


@pytest.mark.parametrize(("path", "key"), [
    (("conversation", "speaker_a"), "missing key 'speaker_a'"),
    (("conversation", "session_1", 2, "dia_id"), "session_1[2]: missing key 'dia_id'"),
    (("qa",), "missing key 'qa'"),
])
def test_locomo_missing_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     path: tuple, key: str) -> None:
    data = copy.deepcopy(_small_locomo())
    node = data[0]
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ReplayFormatError, match=r"missing key"):
        load_script(bad)
    code, _, err = _replay(capsys, str(bad), "--out", str(tmp_path / "report"))
    assert code == 2 and key in err, err
    assert not (tmp_path / "report").exists()


def test_probe_evidence_must_name_a_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conv = _conversation(tmp_path / "conv.jsonl", 5)
    probes = _write_jsonl(tmp_path / "p.jsonl", [{"question": "cat?", "evidence": ["fact-3"]},
                                                 {"question": "x?", "evidence": ["nope"]}])
    code, _, err = _replay(capsys, str(conv), "--probes", str(probes), "--out", str(tmp_path / "r"))
    assert code == 2 and "p.jsonl, line 2: evidence 'nope' names no user turn" in " ".join(err.split())
    assert not (tmp_path / "r").exists()


def test_existing_report_dir_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conv = _conversation(tmp_path / "conv.jsonl", 3)
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = _replay(capsys, str(conv), "--out", str(out))
    assert code == 2 and "already exists" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_failure_while_writing_leaves_no_partial_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import assistant.replay.report as report

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report, "_plot_memory", broken)
    conv = _conversation(tmp_path / "conv.jsonl", 4)
    with pytest.raises(OSError, match="disk full"):
        main(["replay", str(conv), "--out", str(tmp_path / "r"), "--no-progress"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv.jsonl"]  # no report, no temp dir


def test_locomo_replay_carries_session_dates_and_scores_its_questions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from memory.db import open_engine
    from memory.store import ConversationStore

    small = tmp_path / "small.json"
    small.write_text(json.dumps(_small_locomo()))
    code, summary, _ = _replay(capsys, str(small), "--out", str(tmp_path / "r"),
                               "--data-dir", str(tmp_path / "data"))
    assert code == 0
    meta = summary["meta"]
    assert meta["format"] == "locomo" and meta["conversation"] == "tiny-1" and meta["turns"] == 6
    assert summary["pending_question"]["violations"] == 0
    probes = summary["probes"]
    assert probes["asked"] > 0 and 0.0 <= probes["recall"]["all"] <= 1.0
    store = ConversationStore(open_engine(f"sqlite:///{tmp_path / 'data' / 'lastmile.db'}"))
    first = store.history("replay", f"{meta['run']}-session_1")[0]
    assert first.content.startswith("Alice: ")
    assert first.created_at.replace(tzinfo=None) == datetime(2023, 5, 8, 13, 56)
    store.engine.dispose()


def test_the_pending_question_check_flags_a_prompt_without_it() -> None:
    """The check the replay relies on can fail: a stored context without the user
    message's id, or a prompt ending on something else, is reported."""
    from assistant.providers import Usage
    from assistant.replay.engine import _turn_record
    from assistant.replay.inputs import ReplayTurn
    from assistant.reply import Reply
    from memory.store import StoredMessage

    turn = ReplayTurn("7", "What is my cat called?")
    reply = Reply("Noted.", "scripted", "s", message_id=12, user_message_id=11, usage=Usage(9, 1))

    def stored(ids: list[int]) -> StoredMessage:
        return StoredMessage(12, "s", "u", "assistant", "Noted.", "ok", datetime(2024, 1, 1),
                             prompt_tokens=9, context={"message_ids": ids, "history_tokens": 5,
                                                       "memory_tokens": 3, "total_tokens": 8})

    good = _turn_record(1, turn, "s", reply, stored([9, 10, 11]), {}, "What is my cat called?", turn.content)
    assert good["pending_ok"] and good["blocks"] == {"history": 5, "memory": 3}
    lost = _turn_record(1, turn, "s", reply, stored([9, 10]), {}, "What is my cat called?", turn.content)
    assert not lost["pending_ok"] and "message_ids" in lost["problems"][0]
    moved = _turn_record(1, turn, "s", reply, stored([11]), {}, "Summarise the above.", turn.content)
    assert moved["problems"] == ["the prompt's last message is not the pending question"]
    missing = _turn_record(1, turn, "s", reply, None, {}, None, turn.content)
    assert missing["problems"] == ["no stored context"]
