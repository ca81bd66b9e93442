"""Issue 12, bad input and faults: a replica that cannot reach PostgreSQL or the Chroma
server answers ``/readyz`` 503 (``/healthz`` stays 200), refuses turns with a clear 503
and stores nothing of them, and is ready again by itself once the database is back.
The outage is real: the replica's database connections go through a TCP proxy the
test cuts (``TcpProxy``); Chroma is a real ``chroma run`` the test stops."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from cluster_support import TcpProxy
from sqlalchemy import create_engine, make_url, text

from assistant.testing.cluster import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _wait_status(url: str, status: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (got := httpx.get(url, timeout=10).status_code) != status:
        assert time.monotonic() < deadline, f"{url} stayed {got}, expected {status}"
        time.sleep(0.2)


def test_unreachable_database_or_chroma_is_not_ready_and_refuses_turns(
        postgres_url: str, tmp_path: Path, live_server) -> None:
    from assistant import Assistant, Settings

    parsed = make_url(postgres_url)
    proxy = TcpProxy(parsed.port or 5432)
    proxied = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    schema = f"h_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db_url = f"{proxied}{'&' if '?' in proxied else '?'}options=-csearch_path%3D{schema}"
    cluster = Cluster(db_url, tmp_path / "c")
    try:
        chroma = cluster.start_chroma()
        bot = Assistant(Settings(data_dir=tmp_path / "d", database_url=db_url, chroma_url=chroma,
                                 providers="scripted", sample_corpus=False))
        url, _stop = live_server(bot)

        def turn(text_: str) -> httpx.Response:
            return httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
                "model": "lastmile", "messages": [{"role": "user", "content": text_}],
                "metadata": {"session_id": "s"}})

        assert httpx.get(f"{url}/readyz").status_code == 200
        assert turn("before the outage").status_code == 200
        proxy.cut()
        _wait_status(f"{url}/readyz", 503)
        assert httpx.get(f"{url}/readyz").json() == {"status": "unavailable"}
        assert httpx.get(f"{url}/healthz").status_code == 200
        refused = turn("during the outage")
        assert refused.status_code == 503, refused.text
        assert "database is unreachable" in refused.json()["error"]["message"]
        proxy.restore()
        _wait_status(f"{url}/readyz", 200)  # no restart: the pool reconnects
        assert turn("after the outage").status_code == 200
        with admin.connect() as conn:
            conn.execute(text(f'SET search_path TO "{schema}"'))
            users = [c for (c,) in conn.execute(text(
                "SELECT content FROM messages WHERE role = 'user' ORDER BY id"))]
        assert users == ["before the outage", "after the outage"]  # nothing half-stored
        next(p for p in cluster.procs if p.name == "chroma").stop(signal.SIGTERM)
        _wait_status(f"{url}/readyz", 503)
        bot.close()
    finally:
        cluster.close()
        proxy.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
