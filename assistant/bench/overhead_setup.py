"""The processes and data of ``lastmile bench overhead``: a scratch PostgreSQL database,
the seeded users, the echo backend, ``lastmile serve`` on it and an optional LiteLLM proxy.

Every process is a real subprocess started through ``assistant.testing.cluster`` (stopped
by PID, never by name). The big user is seeded before ``lastmile serve`` starts, in this
process, through the real ``Assistant`` (store, outbox, job workers, corpus ingest), so
its 10,000 turns are indexed the way served turns are and the server starts cold on them.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.testing.cluster import Cluster, Proc, free_port

__all__ = ["BIG_SESSIONS", "Stack", "litellm_executable", "scratch_database", "seed_big_user",
           "write_corpus"]

BIG_SESSIONS = 50  # the big user's turns are spread over this many sessions
_TOPICS = ("ferry timetables", "per-diem rates", "boiler servicing", "library hours",
           "parking permits", "recycling days", "school terms", "clinic opening times",
           "tram fares", "swimming pool lanes")


def scratch_database(admin_url: str) -> str:
    """Create an empty database beside ``admin_url``'s; returns its URL."""
    from sqlalchemy import create_engine, make_url, text

    name = f"lastmile_overhead_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, make_url, text

    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def write_corpus(folder: Path, n: int) -> list[Path]:
    """``n`` small plain-text documents with numbers, dates and units to cite."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        topic = _TOPICS[i % len(_TOPICS)]
        body = "\n\n".join(
            f"Section {s} of the {topic} notice {i}. From {3 + (i + s) % 9} May 2026 the "
            f"{topic} change: the fee is {12 + i % 17}.{s}0 euros per visit and the office "
            f"opens at {7 + s % 3}:30 on weekdays. Requests take {2 + (i * s) % 5} working "
            f"days; appeals go to desk {i % 13 + s}." for s in range(1, 7))
        path = folder / f"notice-{i:02d}.txt"
        path.write_text(f"{topic.title()} notice {i}\n\n{body}\n")
        paths.append(path)
    return paths


def seed_big_user(url: str, data_dir: Path, user: str, *, turns: int, documents: int) -> float:
    """Store ``turns`` turns (user + reply) for ``user`` over ``BIG_SESSIONS`` sessions and a
    ``documents``-document corpus of their own, index everything, and ingest the sample
    corpus; returns the seconds it took. Runs before ``lastmile serve`` opens ``data_dir``."""
    from rich.console import Console

    from assistant.cli.ingest import sample_corpus
    from assistant.orchestrator import Assistant
    from assistant.providers.scripted import ScriptedModel
    from assistant.settings import Settings
    from memory.corpus import Corpus

    started = time.monotonic()
    settings = Settings(data_dir=data_dir, database_url=url, providers="scripted",
                        sample_corpus=True)
    corpus = sample_corpus(settings, Console(stderr=True), background=False)
    if isinstance(corpus, Corpus) and documents:
        corpus.ingest(write_corpus(data_dir / "corpus", documents), collection="notices",
                      user_id=user)
    model = ScriptedModel(fn=lambda messages: "Noted, thanks.")
    with Assistant(settings, model=model, documents=corpus) as bot:
        store: Any = bot.store
        for t in range(turns // 2):
            session = f"big-{t % BIG_SESSIONS}"
            topic = _TOPICS[t % len(_TOPICS)]
            store.add_message(user, session, "user",
                              f"note {t}: my {topic} question number {t} came up on day {t % 28 + 1}",
                              token_count=16, reply_state="answered")
            store.add_message(user, session, "assistant",
                              f"Thanks, I noted item {t} about {topic}.", token_count=10)
        bot.flush()
    return time.monotonic() - started


def litellm_executable() -> str | None:
    """The ``litellm`` proxy CLI: next to this Python (the ``bench`` extra), on ``PATH``, or
    ``LASTMILE_BENCH_LITELLM`` (a separate virtualenv's ``bin/litellm``)."""
    explicit = os.environ.get("LASTMILE_BENCH_LITELLM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("litellm", path=str(Path(sys.executable).parent)) or shutil.which("litellm")


@dataclass
class Stack:
    """The running processes of one benchmark: ``close()`` stops them all by PID."""

    workdir: Path
    database_url: str

    def __post_init__(self) -> None:
        self.cluster = Cluster(self.database_url, self.workdir, providers="openai:gpt-4o-mini")
        self.echo: Proc | None = None
        self.lastmile: Proc | None = None
        self.litellm: Proc | None = None

    def start_echo(self) -> str:
        """The echo backend; returns its ``/v1`` base URL."""
        port = free_port()
        self.echo = self.cluster._spawn(  # the cluster's own spawner: stopped by PID
            "echo", [sys.executable, "-m", "assistant.bench.overhead_echo", "--port", str(port)],
            {}, f"http://127.0.0.1:{port}")
        _wait_port(self.echo, port)
        return f"http://127.0.0.1:{port}/v1"

    def start_lastmile(self, backend: str, *, env: dict[str, str] | None = None) -> str:
        """``lastmile serve`` with every feature on, its ``openai`` provider at ``backend``."""
        extra = {"OPENAI_BASE_URL": backend, "OPENAI_API_KEY": "sk-bench",
                 "LASTMILE_SAMPLE_CORPUS": "true", **(env or {})}
        self.lastmile = self.cluster.start_replica("lastmile", env=extra, timeout=300)
        assert self.lastmile.url is not None
        return f"{self.lastmile.url}/v1"

    def start_litellm(self, backend: str, executable: str, timeout: float = 180.0) -> tuple[str, str]:
        """A LiteLLM proxy (one worker, no database) routing model ``echo`` to ``backend``;
        returns its ``/v1`` URL and master key (it refuses to start without one)."""
        config = self.workdir / "litellm.yaml"
        master = f"sk-{uuid.uuid4().hex}"
        config.write_text("model_list:\n  - model_name: echo\n    litellm_params:\n"
                          "      model: openai/echo\n"
                          f"      api_base: {backend}\n      api_key: sk-bench\n"
                          f"general_settings:\n  master_key: {master}\n"
                          "litellm_settings:\n  telemetry: false\n")
        port = free_port()
        self.litellm = self.cluster._spawn(
            "litellm", [executable, "--config", str(config), "--host", "127.0.0.1",
                        "--port", str(port), "--num_workers", "1"],
            {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}, f"http://127.0.0.1:{port}")
        _wait_port(self.litellm, port, timeout, path="/health/liveliness")
        return f"http://127.0.0.1:{port}/v1", master

    def close(self) -> None:
        self.cluster.close()


def _wait_port(proc: Proc, port: int, timeout: float = 60.0, path: str | None = None) -> None:
    """Until ``port`` accepts connections (and ``path`` answers 200, when given)."""
    import socket
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.output()[-1500:]}")
        try:
            if path is None:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            else:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                    if resp.status == 200:
                        return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{proc.name} did not listen on {port} within {timeout:.0f} s: "
                       f"{proc.output()[-1500:]}")
