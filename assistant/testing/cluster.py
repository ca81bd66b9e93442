"""A real lastmile cluster on this machine: ``chroma run``, ``lastmile serve`` replicas
and ``lastmile worker`` processes on one database, all on loopback.

Used by ``tests/cluster/``, ``lastmile bench cluster`` and ``make cluster``
(``python -m assistant.testing.cluster``). Each process is a real subprocess with its
own data directory: replicas share only what a deployment shares (the database, the
Chroma server, the secrets), so anything else they agree on has to come through those.
Processes are stopped by PID, never by name. Stdlib only (plus ``lastmile``'s own
executables next to this Python; SQLAlchemy to create a missing database).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from assistant.settings import child_environment

__all__ = ["Cluster", "Proc", "free_port", "rss_mb"]

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (``/proc``; 0.0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _exe(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"`{name}` is not installed next to {sys.executable}")
    return found


@dataclass
class Proc:
    """One subprocess of the cluster."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def send(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait; SIGKILL after ``timeout``. Returns the exit code."""
        self.send(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(10)


class Cluster:
    """Start and stop the processes of one cluster; ``close()`` stops whatever is left."""

    def __init__(self, database_url: str, workdir: Path, *,
                 env: Mapping[str, str] | None = None, providers: str = "scripted") -> None:
        self.database_url = database_url
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.chroma_url: str | None = None
        self.procs: list[Proc] = []
        self.base_env = {
            "LASTMILE_DATABASE_URL": database_url, "LASTMILE_PROVIDERS": providers,
            "LASTMILE_SAMPLE_CORPUS": "false", "HF_HUB_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False", "OPENBLAS_NUM_THREADS": "1",
            "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1", **(env or {})}

    # -- processes ---------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str], url: str | None) -> Proc:
        log = self.workdir / f"{name}.log"
        full = child_environment(env)
        with open(log, "ab") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full,
                                     cwd=self.workdir, start_new_session=True)
        proc = Proc(name, popen, log, url, dict(env))
        self.procs.append(proc)
        return proc

    def start_chroma(self, timeout: float = 60.0) -> str:
        """A ``chroma run`` server; returns its URL once it answers."""
        port = free_port()
        proc = self._spawn("chroma", [_exe("chroma"), "run", "--path", str(self.workdir / "chroma"),
                                      "--host", "127.0.0.1", "--port", str(port)], {},
                           f"http://127.0.0.1:{port}")
        assert proc.url is not None
        _wait_http(proc, f"{proc.url}/api/v2/heartbeat", timeout)
        self.chroma_url = proc.url
        self.base_env["LASTMILE_CHROMA_URL"] = proc.url
        return proc.url

    def _env(self, name: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {**self.base_env, "LASTMILE_DATA_DIR": str(self.workdir / name), **(extra or {})}

    def start_replica(self, name: str, *, env: Mapping[str, str] | None = None,
                      wait: bool = True, timeout: float = 120.0) -> Proc:
        """``lastmile serve`` on a free port; with ``wait``, returns once ``/readyz`` is 200."""
        port = free_port()
        proc = self._spawn(name, [_exe("lastmile"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                           self._env(name, env), f"http://127.0.0.1:{port}")
        if wait:
            self.wait_ready(proc, timeout)
        return proc

    def start_worker(self, name: str, *, env: Mapping[str, str] | None = None) -> Proc:
        """``lastmile worker`` (no port)."""
        return self._spawn(name, [_exe("lastmile"), "worker"], self._env(name, env), None)

    def wait_ready(self, proc: Proc, timeout: float = 120.0) -> None:
        assert proc.url is not None
        _wait_http(proc, f"{proc.url}/readyz", timeout)

    def close(self) -> None:
        """Stop every process still running (SIGTERM, then SIGKILL), replicas before Chroma."""
        for proc in reversed(self.procs):
            if proc.alive():
                proc.stop(signal.SIGTERM, timeout=30)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait_http(proc: Proc, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}): {proc.output()[-1500:]}")
        with contextlib.suppress(OSError, urllib.error.URLError), \
                urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{proc.name} did not answer {url} within {timeout:.0f} s: "
                       f"{proc.output()[-1500:]}")


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` when missing (``make cluster`` on a fresh box)."""
    from sqlalchemy import create_engine, make_url, text

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                           {"n": parsed.database}) is None:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def _stop_on_signals() -> Iterator[None]:
    """Until SIGINT/SIGTERM (``make cluster``'s Ctrl-C)."""
    hit: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: hit.append(signum))
    while not hit:
        time.sleep(0.3)
        yield


def main(argv: list[str] | None = None) -> int:
    """``make cluster``: chroma + N replicas (workers off) + one worker until Ctrl-C."""
    from assistant.settings import Settings

    settings = Settings()  # the defaults come from the one settings model, like every process's
    shared = settings.database_url if (settings.database_url or "").startswith("postgresql") else (
        "postgresql+psycopg://postgres@127.0.0.1:5432/lastmile")  # replicas share one server
    parser = argparse.ArgumentParser(prog="python -m assistant.testing.cluster")
    parser.add_argument("--database-url", default=shared)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workdir", default=".cluster")
    parser.add_argument("--providers", default=settings.providers)
    args = parser.parse_args(argv)
    ensure_database(args.database_url)
    cluster = Cluster(args.database_url, Path(args.workdir).resolve(), providers=args.providers,
                      env={"LASTMILE_SAMPLE_CORPUS": "true"})
    try:
        print(f"chroma      {cluster.start_chroma()}", flush=True)
        replicas = [cluster.start_replica(f"replica-{i + 1}", wait=False,
                                          env={"LASTMILE_JOB_WORKERS": "false"})
                    for i in range(args.replicas)]
        worker = cluster.start_worker("worker-1")
        for proc in replicas:
            cluster.wait_ready(proc)
            print(f"{proc.name:<11} {proc.url}  (pid {proc.pid}, log {proc.log})", flush=True)
        print(f"{worker.name:<11} pid {worker.pid}, log {worker.log}", flush=True)
        print("Ctrl-C stops all", flush=True)
        for _ in _stop_on_signals():
            if not all(p.alive() for p in cluster.procs):
                dead = [p.name for p in cluster.procs if not p.alive()]
                print(f"stopped: {', '.join(dead)} exited", flush=True)
                break
    finally:
        cluster.close()
    codes = {p.name: p.popen.returncode for p in cluster.procs}
    print("exit codes: " + ", ".join(f"{k} {v}" for k, v in codes.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
