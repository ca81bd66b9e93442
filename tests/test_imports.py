"""Every package imports on its own, in any order, and exports what ``__all__`` promises."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["assistant", "memory", "memory.store", "memory.models",
                                    "memory.minilm", "guardrails", "ui", "assistant.errors"])
def test_fresh_interpreter_imports_and_resolves_all(module: str) -> None:
    code = (f"import importlib; m = importlib.import_module({module!r}); "
            "[getattr(m, n) for n in getattr(m, '__all__', [])]")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
