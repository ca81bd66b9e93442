"""Replaying a long conversation through the real ``Assistant`` and reporting on it.

``inputs`` reads what to replay (JSONL chat logs, LoCoMo JSON, probes), ``engine`` drives
the turns, ``timing`` holds the thin wrappers that time what stored stage timings cannot
show, ``report`` writes JSON, Markdown and charts. ``lastmile replay`` is
``assistant.cli.replay``. Exports resolve lazily: reading an input file does not import
the orchestrator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.replay.engine import ReplayOptions, run_replay
    from assistant.replay.inputs import Probe, ReplayTurn, Script, load_probes, load_script
    from assistant.replay.report import write_report

__all__ = ["Probe", "ReplayOptions", "ReplayTurn", "Script", "load_probes", "load_script",
           "run_replay", "write_report"]

_EXPORTS = {"ReplayOptions": "engine", "run_replay": "engine", "Probe": "inputs",
            "ReplayTurn": "inputs", "Script": "inputs", "load_probes": "inputs",
            "load_script": "inputs", "write_report": "report"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"assistant.replay.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'assistant.replay' has no attribute {name!r}")
