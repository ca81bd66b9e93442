"""The processes and data of ``lastmile bench overhead``: a scratch PostgreSQL database,
the seeded users, the echo backend, ``lastmile serve`` on it and an optional LiteLLM proxy.

Every process is a real subprocess started through ``assistant.testing.cluster`` (stopped
by PID, never by name). The big user is seeded before ``lastmile serve`` starts, in this
process, through the real ``Assistant`` (store, outbox, job workers, corpus ingest), so
its 10,000 turns are indexed the way served turns are and the server starts cold on them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.settings import child_environment
from assistant.testing.cluster import Cluster, Proc, free_port

__all__ = ["BIG_SESSIONS", "Stack", "drop_database", "litellm_executable", "scratch_database",
           "seed_big_user", "seed_in_subprocess", "seeded_copy", "write_corpus"]

BIG_SESSIONS = 50  # the big user's turns are spread over this many sessions
_TOPICS = ("ferry timetables", "per-diem rates", "boiler servicing", "library hours",
           "parking permits", "recycling days", "school terms", "clinic opening times",
           "tram fares", "swimming pool lanes")


def scratch_database(admin_url: str, name: str | None = None) -> str:
    """Create an empty database beside ``admin_url``'s; returns its URL."""
    from sqlalchemy import create_engine, make_url, text

    name = name or f"lastmile_overhead_{uuid.uuid4().hex[:10]}"
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
    """Store ``turns`` messages (user, reply, ...) for ``user`` over ``BIG_SESSIONS`` sessions, a
    ``documents``-document corpus of their own, index everything, and ingest the sample
    corpus; returns the seconds it took. Runs before ``lastmile serve`` opens ``data_dir``."""
    from rich.console import Console

    from assistant.cli.ingest import sample_corpus
    from assistant.orchestrator import Assistant
    from assistant.providers.scripted import ScriptedModel
    from assistant.settings import Settings
    from memory.corpus import Corpus
    from memory.indexer import SWEEP_JOB

    started = time.monotonic()
    settings = Settings(data_dir=data_dir, database_url=url, providers="scripted",
                        sample_corpus=True, job_flush_timeout_s=3600)
    corpus = sample_corpus(settings, Console(stderr=True), background=False)
    if isinstance(corpus, Corpus) and documents:
        corpus.ingest(write_corpus(data_dir / "corpus", documents), collection="notices",
                      user_id=user)
    model = ScriptedModel(fn=lambda messages: "Noted, thanks.")
    with Assistant(settings, model=model, documents=corpus) as bot:
        if turns:
            _bulk_turns(bot.store, user, turns)
            # The workers' start-up sweep ran before the rows existed: ask for another.
            assert bot.jobs is not None
            bot.jobs.enqueue(SWEEP_JOB, {}, dedupe_key=SWEEP_JOB)
        bot.flush()
    return time.monotonic() - started


def _bulk_turns(store: Any, user: str, turns: int) -> None:
    """``turns`` stored messages (user, reply, ...) over ``BIG_SESSIONS`` sessions, a day
    apart per exchange, inserted in bulk: 45 ms per ``add_message`` on a loaded box would
    take 15 minutes for 10,000. They carry no jobs; the index sweep picks them up."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from memory.models import Conversation, Message

    for s in range(BIG_SESSIONS):  # the store creates the user and session rows
        store.add_message(user, f"big-{s}", "user", f"session {s} starts here", token_count=6,
                          reply_state="answered")
    with store.engine.begin() as conn:
        conv = dict(conn.execute(select(Conversation.key, Conversation.id)
                                 .where(Conversation.user_id == user)).all())
        start = datetime.now(UTC) - timedelta(days=turns // 2 + 1)
        rows = []
        for t in range(max(0, turns - BIG_SESSIONS) // 2):
            topic = _TOPICS[t % len(_TOPICS)]
            when = start + timedelta(days=t // BIG_SESSIONS, minutes=t % BIG_SESSIONS)
            base = {"conversation_id": conv[f"big-{t % BIG_SESSIONS}"], "user_id": user,
                    "status": "ok", "created_at": when}
            rows.append({**base, "role": "user", "token_count": 16, "reply_state": "answered",
                         "content": f"note {t}: my {topic} question number {t} came up on day "
                                    f"{t % 28 + 1}"})
            rows.append({**base, "role": "assistant", "token_count": 10, "reply_state": None,
                         "provider": "scripted", "content": f"Thanks, I noted item {t} about {topic}."})
        for i in range(0, len(rows), 2000):
            conn.execute(insert(Message), rows[i:i + 2000])


def seed_in_subprocess(url: str, data_dir: Path, user: str, *, turns: int, documents: int,
                       log: Path) -> float:
    """``seed_big_user`` in a child process with one BLAS thread per process, as the
    served processes run (threads oversubscribing two cores made ingest 5x slower)."""
    env = child_environment({"OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                             "ANONYMIZED_TELEMETRY": "False"})
    with open(log, "ab") as out:
        done = subprocess.run([sys.executable, "-m", "assistant.bench.overhead_setup", url,
                               str(data_dir), user, str(turns), str(documents)],
                              stdout=subprocess.PIPE, stderr=out, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed ({done.returncode}): {log.read_text()[-1500:]}")
    return float(done.stdout.decode().split()[-1])


#: Bump when the seeded data changes shape (texts, sessions, corpus), to reseed caches.
SEED_VERSION = 1


def _seed_key(turns: int, documents: int) -> str:
    """What a seeded template depends on. Not the schema (``lastmile serve`` migrates a
    copy to head) nor the sample corpus (each copy is refreshed: ``seeded_copy``)."""
    import hashlib

    return hashlib.sha256(f"{SEED_VERSION}:{turns}:{documents}".encode()).hexdigest()[:12]


def _database_exists(admin_url: str, name: str) -> bool:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url)
    try:
        with admin.connect() as conn:
            return conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) == 1
    finally:
        admin.dispose()


def seeded_copy(admin_url: str, data_dir: Path, user: str, *, turns: int, documents: int,
                cache: Path, log: Path) -> tuple[str, float]:
    """A scratch database and data directory holding the seeded big user; returns the
    database URL and the seconds seeding took (0 when reused).

    Embedding 10,000 turns takes minutes on a loaded two-core box, so the seeded state is
    kept once per key (``_seed_key``): a template database ``lastmile_overhead_tpl_<key>``
    on the server and its data directory under ``cache``. Each run starts from a copy
    (``CREATE DATABASE ... TEMPLATE``), so nothing a run writes leaks into the next.
    """
    from sqlalchemy import create_engine, make_url, text

    key = _seed_key(turns, documents)
    template = f"lastmile_overhead_tpl_{key}"
    folder = cache / key
    took = 0.0
    if not (folder / "done").exists() or not _database_exists(admin_url, template):
        shutil.rmtree(folder, ignore_errors=True)
        drop_database(admin_url, make_url(admin_url).set(database=template).render_as_string(
            hide_password=False))
        url = scratch_database(admin_url, name=template)
        took = seed_in_subprocess(url, folder / "data", user, turns=turns, documents=documents,
                                  log=log)
        (folder / "done").write_text(f"{turns} turns, {documents} documents, {took:.0f} s\n")
    name = f"lastmile_overhead_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()
    shutil.copytree(folder / "data", data_dir)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    # The sample corpus (the project's docs) may have changed since the template was made:
    # re-ingest what changed now, not in ``lastmile serve``'s background while measuring.
    took += seed_in_subprocess(url, data_dir, user, turns=0, documents=0, log=log)
    return url, took


def litellm_executable(explicit: str | None = None) -> str | None:
    """The ``litellm`` proxy CLI: ``explicit`` (``--litellm``), else next to this Python, else
    the repository's ``.venv-litellm`` (``make bench-overhead`` makes it: LiteLLM's pins
    conflict with lastmile's, so it gets a virtualenv of its own), else ``PATH``."""
    if explicit:
        return explicit if Path(explicit).exists() else None
    beside = Path(__file__).resolve().parents[2] / ".venv-litellm" / "bin" / "litellm"
    return (shutil.which("litellm", path=str(Path(sys.executable).parent))
            or (str(beside) if beside.exists() else None) or shutil.which("litellm"))


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


if __name__ == "__main__":  # the seeding child: URL DATA_DIR USER TURNS DOCUMENTS
    _url, _dir, _user, _turns, _docs = sys.argv[1:6]
    print(seed_big_user(_url, Path(_dir), _user, turns=int(_turns), documents=int(_docs)))
