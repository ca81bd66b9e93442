"""Layers point one way (ui → assistant → guardrails → memory, over the kernel): the
import-linter contracts in pyproject.toml hold, a broken one is caught, and importing
``memory`` or ``guardrails`` (or any module of theirs) never loads the orchestrator."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("ui", "assistant", "guardrails", "memory")


def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` of the venv on the packages found first on the path in ``cwd``."""
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=300,
                          env={"PYTHONPATH": str(cwd), "PATH": str(LINT.parent)})


def test_the_layers_and_kernel_contracts_are_kept() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("where, line, broken", [
    # memory reaching up into the assistant layer, as memory/context_turn.py once did
    ("memory/db.py", "import assistant.orchestrator", "memory is not allowed to import assistant"),
    # guardrails reaching up
    ("guardrails/input.py", "import assistant.grounding", "guardrails is not allowed to import assistant"),
    # memory reaching up into the guardrails, as memory/corpus.py once did
    ("memory/ingest.py", "import guardrails.injection", "memory is not allowed to import guardrails"),
    # the kernel importing a layer, as Settings once imported guardrails.pii
    ("assistant/settings.py", "import guardrails.pii", "assistant.settings is not allowed to import guardrails"),
    ("assistant/reply.py", "import assistant.context", "assistant.reply is not allowed to import assistant.context"),
])
def test_an_upward_import_breaks_the_contract(tmp_path: Path, where: str, line: str, broken: str) -> None:
    """The same contracts over a copy of the code with one upward import added fail,
    naming it: the check above cannot pass by checking nothing."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / where
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # an upward import\n",
                      encoding="utf-8")
    result = lint(tmp_path)
    assert result.returncode != 0, result.stdout[-3000:]
    assert broken in " ".join(result.stdout.split()), result.stdout[-3000:]


def _loads_orchestrator(module: str) -> subprocess.CompletedProcess[str]:
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "print('assistant.orchestrator' in sys.modules)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)


def test_memory_and_guardrails_alone_do_not_load_the_orchestrator() -> None:
    result = _loads_orchestrator("memory")
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr[-2000:]
    code = "import memory, guardrails, sys; assert 'assistant.orchestrator' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def _submodules() -> list[str]:
    code = ("import pkgutil, memory, guardrails\n"
            "for p in (memory, guardrails):\n"
            "    for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
            "        print(m.name)\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=ROOT, check=True).stdout.split()
    return [m for m in found if ".migrations" not in m]  # alembic's env runs only under alembic


def test_every_memory_and_guardrails_module_alone_leaves_the_orchestrator_unloaded() -> None:
    modules = _submodules()
    assert "memory.store" in modules and "guardrails.injection" in modules  # the walk found them
    loaded = {}
    for module in modules:
        result = _loads_orchestrator(module)
        if result.returncode != 0 or result.stdout.strip() != "False":
            loaded[module] = result.stdout.strip() or result.stderr[-300:]
    assert not loaded, loaded
