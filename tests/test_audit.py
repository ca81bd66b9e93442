"""The audit log: input guards timed per guard, UI errors shown with a reference id that
finds their line."""

from __future__ import annotations

import json
import logging

import gradio as gr
import pytest

from assistant import Assistant, InputRejected, ScriptedModel, Settings
from assistant.audit import audit, open_audit_log
from assistant.errors import ProviderUnavailable
from ui.chat_tab import friendly


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.name == "lastmile.audit" and json.loads(r.getMessage())["event"] == name]


def test_every_input_guard_is_timed_in_the_audit_log(settings: Settings, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="lastmile.audit")
    with Assistant(settings.model_copy(update={"index_turns": False}),
                   model=ScriptedModel(fn=lambda m: "ok")) as bot:
        bot.chat("hello there", session_id="s", user_id="ann")
        with pytest.raises(InputRejected):
            bot.chat("   ", session_id="s", user_id="ann")
        stored = bot.history("s", user_id="ann")[-1].context
    passed, refused = events(caplog, "input_guards")
    names = [g.name for g in bot.guards.guards]
    assert list(passed["ms"]) == names and passed["refused_by"] is None
    assert all(v >= 0 for v in passed["ms"].values()) and passed["user_id"] == "ann"
    assert refused["refused_by"] == "input-limits" and list(refused["ms"]) == ["input-limits"]
    assert list(stored["guards_ms"]) == names  # and kept with the reply


@pytest.mark.parametrize("error, shown", [
    (ProviderUnavailable("db on fire"), ProviderUnavailable.user_message),
    (RuntimeError("secret internals"), "Something went wrong on our side"),
])
def test_ui_errors_become_toasts_whose_ref_finds_the_audit_line(
        error: Exception, shown: str, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "audit.log"
    handler = open_audit_log(path)
    try:
        @friendly
        def handler_fn() -> None:
            raise error

        with pytest.raises(gr.Error) as info:
            handler_fn()
    finally:
        logging.getLogger("lastmile.audit").removeHandler(handler)
        handler.close()
    message = str(info.value.message)
    assert shown in message and "secret internals" not in message
    ref = message.rsplit("(ref ", 1)[1].rstrip(").")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    [line] = [entry for entry in lines if entry["ref"] == ref]
    assert line["error"] == type(error).__name__ and str(error) in line["detail"]


def test_audit_refs_are_unique_and_lines_are_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.log"
    handler = open_audit_log(path)
    assert open_audit_log(path) is handler  # idempotent per path
    try:
        refs = {audit("probe", n=i) for i in range(50)}
    finally:
        logging.getLogger("lastmile.audit").removeHandler(handler)
        handler.close()
    assert len(refs) == 50
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == list(range(50))
