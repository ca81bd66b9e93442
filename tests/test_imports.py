"""Every package imports on its own, in any order, and exports what ``__all__`` promises."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["assistant", "memory", "memory.store", "memory.models",
                                    "memory.minilm", "guardrails", "ui", "assistant.errors",
                                    # the tooling sub-packages (docs/architecture.md, Package map)
                                    "assistant.cli", "assistant.replay", "assistant.bench",
                                    "assistant.testing"])
def test_fresh_interpreter_imports_and_resolves_all(module: str) -> None:
    code = (f"import importlib; m = importlib.import_module({module!r}); "
            "[getattr(m, n) for n in getattr(m, '__all__', [])]")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_old_faultserver_path_still_works_and_says_where_it_moved() -> None:
    code = ("import warnings; warnings.simplefilter('always'); "
            "from assistant.testing import FaultServer as new\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    from assistant.faultserver import FaultServer as old\n"
            "assert old is new, (old, new)\n"
            "assert any(issubclass(w.category, DeprecationWarning) and 'assistant.testing' in str(w.message)"
            " for w in seen), [str(w.message) for w in seen]")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
