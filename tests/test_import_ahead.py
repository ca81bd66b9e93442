"""A fresh process imports its remote providers' SDKs in the background when the
assistant is built (issue 14: the import was most of the first turn); a local-only
chain imports none."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, threading
from assistant.settings import Settings
from assistant.wiring import _import_providers_ahead
assert "openai" not in sys.modules
_import_providers_ahead(Settings(providers={providers!r}, openai_api_key="sk-x"))
for t in threading.enumerate():
    if t.name == "import-providers":
        t.join(60)
print("openai" in sys.modules, "assistant.providers.openai" in sys.modules)
"""


def _run(providers: str) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(providers=providers)],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_the_openai_sdk_is_imported_ahead() -> None:
    assert _run("openai:gpt-4o-mini") == "True True"


def test_a_scripted_chain_imports_no_sdk() -> None:
    assert _run("scripted") == "False False"
