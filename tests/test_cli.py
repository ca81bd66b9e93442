"""The `lastmile` command as an operator meets it: real subprocesses, real exit codes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.cli import main

LASTMILE = str(Path(sys.executable).with_name("lastmile"))


def _run(args: list[str], env: dict[str, str], stdin: str = "", timeout: int = 120):  # type: ignore[no-untyped-def]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    full_env.update(env)
    return subprocess.run([LASTMILE, *args], input=stdin, capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def test_doctor_reports_a_healthy_default_setup(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LASTMILE_DATA_DIR", str(tmp_path / "d"))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("local model", "embeddings", "database", "chroma", "provider local"):
        assert name in out
    assert "FAIL" not in out and "SmolLM2-135M-Instruct" in out


def test_doctor_fails_with_fix_it_hints(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LASTMILE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("LASTMILE_LOCAL_MODEL_PATH", str(tmp_path / "missing.gguf"))
    monkeypatch.setenv("LASTMILE_PROVIDERS", "local,openai:gpt-4o-mini")
    monkeypatch.setenv("LASTMILE_DATABASE_URL", "postgresql+psycopg://127.0.0.1:1/nope")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "LASTMILE_LOCAL_MODEL_PATH" in out
    assert "127.0.0.1:1/nope" in out
    assert "key missing" in out


@pytest.mark.parametrize("env,needle", [
    ({"LASTMILE_DATABASE_URL": "postgresql+psycopg://u:secret@127.0.0.1:1/db"}, "127.0.0.1:1/db"),
    ({"LASTMILE_CHROMA_URL": "http://127.0.0.1:9"}, "http://127.0.0.1:9"),
    ({"LASTMILE_PORT": "not-a-port"}, "LASTMILE_PORT"),
])
def test_start_failures_are_one_clear_line(tmp_path, env, needle) -> None:
    result = _run(["chat"], {"LASTMILE_DATA_DIR": str(tmp_path / "d"), **env}, stdin="hi\n")
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert "secret" not in result.stderr


def test_chat_repl_round_trip_and_rejection(tmp_path) -> None:
    env = {"LASTMILE_DATA_DIR": str(tmp_path / "d"), "LASTMILE_PROVIDERS": "scripted"}
    result = _run(["chat", "--session", "cli"], env, stdin="hello there\n   \nbye\n")
    assert result.returncode == 0, result.stderr
    assert "(scripted) you said: hello there" in result.stdout
    assert "empty" in result.stdout.lower()
    assert "(scripted) you said: bye" in result.stdout


def test_unknown_provider_is_a_configuration_error(tmp_path) -> None:
    result = _run(["chat"], {"LASTMILE_DATA_DIR": str(tmp_path / "d"), "LASTMILE_PROVIDERS": "bogus"},
                  stdin="hi\n")
    assert result.returncode == 2 and "bogus" in result.stderr and "doctor" in result.stderr


@pytest.mark.slow
def test_serve_answers_on_the_given_port(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")},
           "LASTMILE_DATA_DIR": str(tmp_path / "d"), "LASTMILE_PROVIDERS": "scripted",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([LASTMILE, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"serve did not come up: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.5)
        assert "gradio" in body.lower()
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize("providers,needle", [
    ("scripted,bogus:model", "'bogus:model'"),
    ("openai:gpt-4o-mini", "OPENAI_API_KEY"),
    ("scripted,anthropic", "ANTHROPIC_API_KEY"),
])
@pytest.mark.parametrize("command", ["chat", "serve"])
def test_a_bad_provider_chain_stops_startup_with_one_line(tmp_path, capsys, monkeypatch, command,
                                                          providers, needle) -> None:
    """Unknown provider names and missing keys fail at start, before any turn, naming
    what to fix in one line (no traceback), for the terminal chat and the server alike."""
    monkeypatch.setenv("LASTMILE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("LASTMILE_INDEX_TURNS", "false")
    monkeypatch.setenv("LASTMILE_SAMPLE_CORPUS", "false")  # serve's docs ingest: not the point here
    monkeypatch.setenv("LASTMILE_PROVIDERS", providers)
    assert main([command]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("lastmile: ") and needle in lines[0] and "lastmile doctor" in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert "serving on" not in captured.err  # it never got as far as listening


def test_doctor_names_each_bad_provider_on_its_own_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LASTMILE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("LASTMILE_PROVIDERS", "scripted,bogus:model,anthropic:claude-x")
    assert main(["doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    fails = [line for line in lines if line.startswith("FAIL") and "provider" in line]
    assert len(fails) == 2
    assert "bogus:model" in fails[0] and "unknown provider" in fails[0]
    assert "anthropic:claude-x" in fails[1] and "key missing" in fails[1]
    assert any(line.startswith("ok") and "provider scripted" in line for line in lines)


@pytest.mark.parametrize("env,value,needle", [
    ("LASTMILE_BUDGET_USER_DAILY_USD", "-5", "greater than or equal to 0"),
    ("LASTMILE_BUDGET_GLOBAL_DAILY_USD", "1e15", "less than or equal to"),
    ("LASTMILE_BUDGET_USER_DAILY_USD", "nan", "LASTMILE_BUDGET_USER_DAILY_USD"),
    ("LASTMILE_BUDGET_SOFT_FRACTION", "7", "less than or equal to 1"),
])
@pytest.mark.parametrize("command", ["chat", "doctor"])
def test_absurd_budget_settings_are_rejected_at_load(tmp_path, capsys, monkeypatch, command,
                                                     env, value, needle) -> None:
    monkeypatch.setenv("LASTMILE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv(env, value)
    assert main([command]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and env in lines[0] and needle in lines[0], captured.err
    assert "Traceback" not in captured.err and not (tmp_path / "d").exists()  # nothing was started
