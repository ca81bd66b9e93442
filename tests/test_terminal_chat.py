"""``lastmile chat`` in a real terminal (tmux), issue 16: with every logger at DEBUG the
screen still shows nothing but prompts, replies and command output (the log lines are
in ``chat.log``), and ``/help`` lists the slash commands instead of going to the model.
The command loop itself is also driven directly, against a scripted model."""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import create_engine, text

from assistant import Assistant, ScriptedModel, Settings
from assistant.cli.chat import COMMANDS, ChatLoop

ALLOWED = ("session ", "you> ", "bot> ", "  /", "  anything else", "new conversation ",
           "CHAT-EXIT ")


class Tmux:
    """One tmux server of our own (its own socket), killed at the end."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.socket = f"lastmile-test-{uuid.uuid4().hex[:8]}"
        self._run("new-session", "-d", "-s", "chat", "-x", "200", "-y", "80", "-c", str(cwd), command)

    def _run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                              text=True, timeout=30).stdout

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-J", "-S", "-", "-t", "chat")

    def type(self, line: str) -> None:
        self._run("send-keys", "-t", "chat", "-l", line)
        self._run("send-keys", "-t", "chat", "Enter")

    def wait_for(self, needle: str, timeout: float = 120.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while (screen := self.screen()).count(needle) < count:
            assert time.monotonic() < deadline, f"{needle!r} not on screen:\n{screen}"
            time.sleep(0.2)
        return screen

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def tmux_chat(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("tmux") is None:
        pytest.skip("no tmux (apt-get install tmux)")
    env = {"LASTMILE_DATA_DIR": str(tmp_path / "data"), "LASTMILE_PROVIDERS": "scripted",
           "LASTMILE_LOG_LEVEL": "debug", "LASTMILE_LOG_LEVEL_LIBRARIES": "debug",
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = " ".join([
        "env", *(shlex.quote(f"{k}={v}") for k, v in env.items()), shlex.quote(sys.executable),
        "-m", "assistant.cli", "chat", "--user", "ann", ";", "echo", "CHAT-EXIT", "$?", ";",
        "sleep", "600"])
    session = Tmux(command, tmp_path)
    yield session, tmp_path / "data"
    session.kill()


def test_the_terminal_shows_only_the_conversation(tmux_chat) -> None:  # type: ignore[no-untyped-def]
    term, data = tmux_chat
    term.wait_for("you> ")
    term.type("my name is Ann and I live in Lisbon")
    term.wait_for("bot> (scripted) you said: my name is Ann and I live in Lisbon")
    term.wait_for("you> ", count=2)
    term.type("where do I live?")  # recalls the first turn: BM25 and Chroma run (and log)
    term.wait_for("bot> (scripted) you said: where do I live?")
    term.wait_for("you> ", count=3)
    term.type("/help")
    screen = term.wait_for("/quit")
    for command in COMMANDS:
        assert command in screen
    term.type("/bogus")
    term.wait_for("unknown command /bogus")
    term.type("/quit")
    screen = term.wait_for("CHAT-EXIT 0", timeout=60)

    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    stray = [line for line in lines if not line.startswith(ALLOWED)
             and not line.startswith("unknown command")]
    assert not stray, f"not part of the conversation: {stray}"
    log = (data / "chat.log").read_text()
    assert " DEBUG " in log and " DEBUG " not in screen  # there was logging; it went to the file
    engine = create_engine(f"sqlite:///{data / 'lastmile.db'}")
    try:
        with engine.connect() as conn:
            said = conn.execute(text("SELECT content FROM messages WHERE role = 'user' "
                                     "ORDER BY id")).scalars().all()
    finally:
        engine.dispose()
    assert said == ["my name is Ann and I live in Lisbon", "where do I live?"]  # no /help, /bogus


def test_slash_commands_never_reach_the_model(tmp_path: Path) -> None:
    model = ScriptedModel(fn=lambda messages: f"got {messages[-1].content}")
    settings = Settings(data_dir=tmp_path / "data", index_turns=False, facts_enabled=False)
    with Assistant(settings, model=model) as bot:
        sink = io.StringIO()
        loop = ChatLoop(bot, "ann", "first", Console(file=sink, width=200))
        for line in ("hello", "/help", "/sessions", "/NEW", "//etc/hosts", "/forget",
                     "/facts", "   "):  # the blank line is refused by the guards, kindly
            assert loop.handle(line) is True
        assert loop.handle("/quit") is False
        shown = sink.getvalue()
        assert [r.messages[-1].content for r in model.requests] == ["hello", "/etc/hosts"]
        assert "bot> got hello" in shown and "bot> got /etc/hosts" in shown
        assert "1. hello · 2 messages" in shown
        assert loop.session != "first"  # /NEW started another conversation
        assert "say which" in shown and "no facts remembered yet" in shown
        assert "empty" in shown.lower()
        loop.handle("/sessions")
        loop.handle("/sessions 9")
        assert "give a number" in sink.getvalue()


def test_library_loggers_stay_at_warning_unless_asked(tmp_path: Path) -> None:
    import logging

    from assistant.cli.logs import SELF_LEVELLED, setup_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level,
             {n: logging.getLogger(n).level for n in (*SELF_LEVELLED, "assistant", "memory")})
    try:
        logging.getLogger("bm25s").setLevel(logging.DEBUG)  # what bm25s does when imported
        setup_logging("debug", to_file=tmp_path / "a.log")
        for name in ("bm25s", "chromadb.telemetry", "assistant.turn", "memory.lexical"):
            for level in (logging.DEBUG, logging.WARNING):
                logging.getLogger(name).log(level, "%s at %s", name, logging.getLevelName(level))
        setup_logging("warning", "debug", to_file=tmp_path / "b.log")
        logging.getLogger("bm25s").debug("bm25s asked for")
        logging.getLogger("assistant.turn").info("assistant quiet")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    first = (tmp_path / "a.log").read_text()
    assert "bm25s at DEBUG" not in first and "chromadb.telemetry at DEBUG" not in first
    assert "bm25s at WARNING" in first and "chromadb.telemetry at WARNING" in first
    assert "assistant.turn at DEBUG" in first and "memory.lexical at DEBUG" in first
    second = (tmp_path / "b.log").read_text()
    assert "bm25s asked for" in second and "assistant quiet" not in second
