"""ruff and mypy (non-strict, configured in pyproject.toml) report nothing on the four
packages, so a lint finding or a type error fails ``make test`` like any other regression.
A seeded fault shows each check is live (the configuration is read, the rules are on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGES = ("assistant", "memory", "guardrails", "ui")


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """A tool from the venv, with the project's configuration (found from ``cwd``)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=900, env=env)


def test_ruff_finds_nothing_in_the_packages() -> None:
    result = run("ruff", "check", "--no-cache", "--output-format", "concise", *PACKAGES)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "All checks passed" in result.stdout


def test_ruff_reads_the_project_rules(tmp_path: Path) -> None:
    # An unsorted import block (I), a blind except without a reason (BLE) and `zip` without
    # `strict=` (B905): rules beyond ruff's defaults, so only the project's config flags them.
    seeded = tmp_path / "seeded.py"
    seeded.write_text("import sys\nimport os\n\n\ntry:\n    print(list(zip(os.sep, sys.argv)))\n"
                      "except Exception:\n    pass\n")
    result = run("ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                 "--output-format", "concise", str(seeded))
    assert result.returncode == 1, result.stdout + result.stderr
    for code in ("I001", "BLE001", "B905"):
        assert code in result.stdout, result.stdout


def test_mypy_finds_no_errors_in_the_packages() -> None:
    # `files` in [tool.mypy] names the four packages; the cache makes a re-run take seconds.
    result = run("mypy")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout, result.stdout[-2000:]


def test_mypy_reads_the_project_settings(tmp_path: Path) -> None:
    # A type error, an ignore without an error code and a stale ignore: the last two are
    # errors only under the project's settings (ignore-without-code, warn_unused_ignores).
    seeded = tmp_path / "seeded.py"
    seeded.write_text('x: int = "one"\ny: str = 1  # type: ignore\nz: int = 2  # type: ignore[assignment]\n')
    result = run("mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental",
                 str(seeded), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "seeded.py:1: error" in out and "[assignment]" in out, out
    assert "seeded.py:2: error" in out and "[ignore-without-code]" in out, out
    assert "seeded.py:3: error" in out and "[unused-ignore]" in out, out
