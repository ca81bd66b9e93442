"""``lastmile bench cluster``: a real cluster under load, and what it loses.

Starts ``chroma run``, ``--replicas`` ``lastmile serve`` processes (workers off) and one
``lastmile worker`` on a scratch PostgreSQL database (``assistant.testing.cluster``),
then drives ``--sessions`` sessions of ``--turns`` turns through ``/v1`` with the
openai SDK, each turn on the next replica in turn (so every session hops replicas).
Printed: errors, lost messages (acknowledged user turns not in the database), the
recall-visibility lag (from A's answer to the first turn on another replica whose
prompt recalls it, p50/p95 over ``--probes`` sessions), the index backlog when the load
stops and after it settles, and each process's resident memory. The model is
``scripted`` (it logs each prompt): the figures are lastmile's, not a model's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

__all__ = ["main"]

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _prompt_for(log: Path, nonce: str) -> str:
    if not log.exists():
        return ""
    for line in reversed(log.read_text().splitlines()):
        messages = json.loads(line)["messages"]
        if messages and nonce in messages[-1]["content"]:
            return "\n".join(m["content"] for m in messages)
    return ""


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _scratch_database(admin_url: str) -> tuple[str, Any]:
    from sqlalchemy import create_engine, make_url, text

    name = f"lastmile_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), admin


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from openai import OpenAI
    from sqlalchemy import create_engine, text

    from assistant.testing.cluster import Cluster, rss_mb
    from memory.accounts import Accounts

    url, admin = _scratch_database(args.postgres_url)
    name = url.rsplit("/", 1)[1]
    cluster = Cluster(url, workdir)
    engine = None
    try:
        cluster.start_chroma()
        logs = [workdir / f"replica-{i}.prompts.jsonl" for i in range(args.replicas)]
        replicas = [cluster.start_replica(f"replica-{i}", wait=False, env={
            "LASTMILE_SERVE_WORKERS": "false", "LASTMILE_PROVIDERS": f"scripted:log={logs[i]}"})
            for i in range(args.replicas)]
        worker = cluster.start_worker("worker")
        for proc in replicas:
            cluster.wait_ready(proc, timeout=300)
        engine = create_engine(url)
        accounts = Accounts(engine)
        keys = []
        for s in range(args.sessions):
            accounts.upsert(f"bench-{s}")
            keys.append(accounts.issue_key(f"bench-{s}"))
        errors: list[str] = []
        acked: list[str] = []
        lags: list[float] = []

        def say(replica: int, s: int, text_: str, session: str) -> None:
            client = OpenAI(base_url=f"{replicas[replica].url}/v1", api_key=keys[s], max_retries=0,
                            timeout=120)
            client.chat.completions.create(model="lastmile", metadata={"session_id": session},
                                           messages=[{"role": "user", "content": text_}])

        def session(s: int) -> None:
            for t in range(args.turns):
                nonce = f"b{s}t{t}x{uuid.uuid4().hex[:6]}"
                try:
                    say((s + t) % args.replicas, s, f"note {nonce}: the kettle{s} boiled at {t}",
                        f"s{s}")
                    acked.append(nonce)
                except Exception as exc:  # noqa: BLE001 - counted and printed, the run goes on
                    errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            if s < args.probes and args.replicas > 1:
                marker = f"heron{uuid.uuid4().hex[:8]}"
                try:
                    say(s % args.replicas, s, f"the {marker} waded at dawn", f"s{s}")
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                    return
                done = time.monotonic()
                other = (s + 1) % args.replicas
                while time.monotonic() - done < 60:
                    nonce = uuid.uuid4().hex[:10]
                    sent = time.monotonic()
                    say(other, s, f"what waded at dawn? ({nonce})", f"p{s}")
                    if marker in _prompt_for(logs[other], nonce):
                        lags.append(sent - done)
                        return
                    time.sleep(0.1)
                errors.append(f"probe {s}: never recalled within 60 s")

        started = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(session, range(args.sessions)))
        elapsed = time.monotonic() - started

        def backlog() -> int:
            with engine.connect() as conn:
                return int(conn.scalar(text("SELECT count(*) FROM messages WHERE indexed_at IS NULL "
                                            "AND status = 'ok'")) or 0)

        at_end = backlog()
        settle = time.monotonic()
        while (left := backlog()) and time.monotonic() - settle < 60:
            time.sleep(0.5)
        with engine.connect() as conn:
            stored = {c for (c,) in conn.execute(text("SELECT content FROM messages WHERE role = 'user'"))}
        lost = sum(not any(n in c for c in stored) for n in acked) if len(acked) < 2000 else -1
        return {"replicas": args.replicas, "sessions": args.sessions, "turns": args.turns,
                "elapsed_s": round(elapsed, 1), "turns_per_s": round(len(acked) / elapsed, 1),
                "errors": len(errors), "first_errors": errors[:3], "lost_messages": lost,
                "recall_lag_p50_s": round(statistics.median(lags), 2) if lags else None,
                "recall_lag_p95_s": round(_percentile(lags, 0.95), 2) if lags else None,
                "probes": len(lags), "index_backlog_at_end": at_end,
                "index_backlog_after_settle": left,
                "settle_s": round(time.monotonic() - settle, 1),
                "rss_mb": {p.name: round(rss_mb(p.pid)) for p in [*replicas, worker]}}
    finally:
        cluster.close()
        if engine is not None:
            engine.dispose()
        from sqlalchemy import text as sql

        with admin.connect() as conn:
            conn.execute(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lastmile bench cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4, help="sessions driven at once")
    parser.add_argument("--probes", type=int, default=10, help="sessions that measure the recall lag")
    parser.add_argument("--postgres-url", default=DEFAULT_PG,
                        help="admin URL; a scratch database is created and dropped")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.replicas < 1 or args.sessions < 1 or args.turns < 1:
        parser.error("--replicas, --sessions and --turns must be at least 1")
    with TemporaryDirectory(prefix="lastmile-bench-cluster-") as tmp:
        result = run(args, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:<28} {value}")
    return 0 if result["errors"] == 0 and result["lost_messages"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
