"""Issue 15 (metrics and readiness): ``/metrics`` parsed with prometheus_client's own
parser (and scraped by Debian's real Prometheus where it can be installed) moves after a
turn, carries no message text and no user id unless configured; provider failures, the
breaker, fallbacks and the job outbox show; ``/readyz`` needs the database and a model."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from assistant import Assistant, Settings
from assistant.testing import Fault, FaultServer
from ui.health import health_router
from ui.metrics import metrics_router

SECRET = "the vault opens with quokka-7391"


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "d", "providers": "scripted", "index_turns": False,
                              "facts_model": "rules", "summary_model": "extractive",
                              "sample_corpus": False}
    return Settings(**{**values, **extra})


def _client(bot: Assistant) -> TestClient:
    app = FastAPI()
    app.include_router(health_router(bot))
    app.include_router(metrics_router(bot))
    return TestClient(app)


def _scrape(client: TestClient) -> tuple[str, dict[tuple[str, frozenset], float]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    return response.text, samples


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_turn_moves_the_turn_histogram_and_nothing_private_shows(tmp_path) -> None:
    with Assistant(_settings(tmp_path)) as bot:
        client = _client(bot)
        _, before = _scrape(client)
        reply = bot.chat(SECRET, session_id="s", user_id="ann-7f3")
        assert reply.ok
        body, after = _scrape(client)
    turn = {"provider": "scripted", "status": "ok"}
    count = "lastmile_turn_duration_seconds_count"
    assert _value(after, count, **turn) == _value(before, count, **turn) + 1
    total = "lastmile_turn_duration_seconds_sum"
    assert _value(after, total, **turn) > _value(before, total, **turn)
    for stage in ("guards", "context", "verification", "storage"):
        name = "lastmile_turn_stage_duration_seconds_count"
        assert _value(after, name, stage=stage, provider="scripted") == _value(
            before, name, stage=stage, provider="scripted") + 1, stage
    ttft = "lastmile_turn_ttft_seconds_count"
    assert _value(after, ttft, provider="scripted") == _value(before, ttft, provider="scripted") + 1
    tokens = "lastmile_tokens_total"
    assert _value(after, tokens, purpose="chat", direction="output") > _value(
        before, tokens, purpose="chat", direction="output")
    assert SECRET not in body and "quokka" not in body
    assert "ann-7f3" not in body and "user_id" not in body


def test_user_ids_are_a_label_only_when_configured(tmp_path) -> None:
    with Assistant(_settings(tmp_path, metrics_labels="user_id, destination")) as bot:
        bot.chat("hello", session_id="s", user_id="bob")
        body, samples = _scrape(_client(bot))
        assert _value(samples, "lastmile_turn_duration_seconds_count", provider="scripted",
                      status="ok", user_id="bob", destination="local") == 1
    with Assistant(_settings(tmp_path)) as bot:  # the default label set again, series restarted
        bot.chat("hello again", session_id="s", user_id="bob")
        body, _ = _scrape(_client(bot))
    assert 'user_id="bob"' not in body


def test_a_bad_label_name_is_refused_by_the_settings() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="metrics_labels"):
        Settings(metrics_labels="session_id")


def test_provider_errors_breaker_and_fallbacks_show(tmp_path) -> None:
    with FaultServer() as fs:
        fs.enqueue(Fault.error(500, "down"), Fault.error(500, "down"))
        settings = _settings(
            tmp_path, providers="openai:test-model,scripted", openai_api_key="sk-test",
            openai_base_url=fs.url + "/v1", retry_attempts=1, breaker_failure_threshold=1)
        with Assistant(settings) as bot:
            client = _client(bot)
            _, before = _scrape(client)
            reply = bot.chat("are you there?", session_id="s")
            _, after = _scrape(client)
    assert reply.ok and reply.provider == "scripted"
    errors = {"provider": "openai:test-model", "kind": "ProviderUnavailable"}
    assert _value(after, "lastmile_provider_errors_total", **errors) == _value(
        before, "lastmile_provider_errors_total", **errors) + 1
    moved = {"from_provider": "openai:test-model", "to_provider": "scripted"}
    assert _value(after, "lastmile_fallbacks_total", **moved) == _value(
        before, "lastmile_fallbacks_total", **moved) + 1
    assert _value(before, "lastmile_breaker_state", provider="openai:test-model") == 0
    assert _value(after, "lastmile_breaker_state", provider="openai:test-model") == 2  # open


def test_outbox_index_backlog_and_review_queue_gauges(tmp_path) -> None:
    settings = _settings(tmp_path, job_workers=False, index_turns=True)  # jobs wait in the outbox
    with Assistant(settings) as bot:
        client = _client(bot)
        _, before = _scrape(client)
        bot.chat("remember that I like green tea", session_id="s")
        time.sleep(1.1)  # index jobs linger briefly before they are due
        _, after = _scrape(client)
        assert bot.review is not None
        bot.review.submit(kind="answer", user_id="default", content="a doubtful answer",
                          reason="low confidence")
        _, reviewed = _scrape(client)
    assert _value(before, "lastmile_index_backlog") == 0
    assert _value(after, "lastmile_index_backlog") >= 1
    assert _value(after, "lastmile_outbox_depth", kind="facts") >= 1
    assert _value(after, "lastmile_outbox_oldest_age_seconds", kind="facts") > 0
    assert _value(reviewed, "lastmile_review_queue_size") == _value(
        after, "lastmile_review_queue_size") + 1


def test_readyz_needs_a_usable_model(tmp_path) -> None:
    with FaultServer() as fs:
        fs.enqueue(*[Fault.error(500, "down")] * 4)
        common = {"openai_api_key": "sk-test", "openai_base_url": fs.url + "/v1",
                  "retry_attempts": 1, "breaker_failure_threshold": 1,
                  "breaker_reset_timeout_s": 600}
        with Assistant(_settings(tmp_path, providers="openai:test-model", **common)) as alone:
            client = _client(alone)
            assert client.get("/readyz").status_code == 200
            assert not alone.chat("hello", session_id="s").ok  # the only provider fails: open
            assert client.get("/readyz").status_code == 503
            assert client.get("/readyz").json() == {"status": "unavailable"}
            assert client.get("/healthz").status_code == 200
        with Assistant(_settings(tmp_path / "b", providers="openai:test-model,scripted",
                                 **common)) as backed:
            client = _client(backed)
            assert backed.chat("hello", session_id="s").ok
            assert client.get("/readyz").status_code == 200  # scripted can still answer
    with Assistant(_settings(tmp_path / "c", providers="openai:test-model")) as keyless:
        assert _client(keyless).get("/readyz").status_code == 503  # no key: nothing usable


@pytest.fixture
def scratch_database(postgres_url: str) -> Iterator[tuple[str, Any]]:
    """A PostgreSQL database of its own, so the test can drop it from under a replica."""
    from sqlalchemy import create_engine, make_url

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"lastmile_gone_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False), admin
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.mark.postgres
def test_readyz_fails_and_metrics_still_answer_when_the_database_is_gone(
        tmp_path, scratch_database, caplog) -> None:
    url, admin = scratch_database
    with Assistant(_settings(tmp_path, database_url=url, job_workers=False)) as bot:
        client = _client(bot)
        assert bot.chat("hello", session_id="s").ok
        assert client.get("/readyz").status_code == 200
        _, samples = _scrape(client)
        assert ("lastmile_review_queue_size", frozenset()) in samples
        name = url.rsplit("/", 1)[1].split("?")[0]
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        with caplog.at_level(logging.WARNING, logger="assistant.metrics"):
            _, gone = _scrape(client)
            _scrape(client)
        assert ("lastmile_review_queue_size", frozenset()) not in gone  # left out, not failed
        assert any(k[0] == "lastmile_turn_duration_seconds_count" for k in gone)
        assert sum("queue gauges left out" in r.getMessage() for r in caplog.records) == 1


def _prometheus() -> str | None:
    """Debian's prometheus binary, installed with apt when missing (as root)."""
    found = shutil.which("prometheus")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
                            capture_output=True, text=True, env=env, timeout=900)
    return shutil.which("prometheus") if result.returncode == 0 else None


def _query(base: str, expr: str) -> float | None:
    url = f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        data = json.load(response)
    results = data["data"]["result"]
    return float(results[0]["value"][1]) if results else None


@pytest.mark.slow
def test_debian_prometheus_scrapes_the_turn_histogram(tmp_path, live_server) -> None:
    binary = _prometheus()
    if binary is None:
        pytest.skip("Debian's prometheus is not installed and apt-get cannot install it here; "
                    "the parser-based tests above cover /metrics")
    with Assistant(_settings(tmp_path)) as bot:
        url, _stop = live_server(bot)
        target = urllib.parse.urlsplit(url).netloc
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            web = f"127.0.0.1:{sock.getsockname()[1]}"
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lastmile\n"
                          f"    static_configs:\n      - targets: ['{target}']\n")
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--web.listen-address={web}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://{web}"
        expr = 'sum(lastmile_turn_duration_seconds_count{provider="scripted"}) or vector(0)'
        try:
            bot.chat("first", session_id="s")
            deadline = time.monotonic() + 60
            before = None
            while before is None or before < 1:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "prometheus never scraped the first turn"
                time.sleep(0.5)
                try:
                    before = _query(base, expr)
                except OSError:
                    continue
            bot.chat("second", session_id="s")
            bot.chat("third", session_id="s")
            after = before
            while after is not None and after < before + 2:
                assert time.monotonic() < deadline + 30, f"stayed at {after} (was {before})"
                time.sleep(0.5)
                after = _query(base, expr)
            up = _query(base, 'up{job="lastmile"}')
        finally:
            proc.terminate()
            proc.wait(20)
    assert after == before + 2
    assert up == 1.0


def test_cache_hits_and_misses_are_counted(tmp_path) -> None:
    with Assistant(_settings(tmp_path, cache_mode="exact")) as bot:
        client = _client(bot)
        _, before = _scrape(client)
        first = bot.chat("what is the capital of Peru?", session_id="a")
        again = bot.chat("what is the capital of Peru?", session_id="b")  # the same prompt
        _, after = _scrape(client)
    assert first.ok and again.ok and again.text == first.text
    name = "lastmile_cache_lookups_total"
    assert _value(after, name, kind="exact", outcome="miss") == _value(
        before, name, kind="exact", outcome="miss") + 1
    assert _value(after, name, kind="exact", outcome="hit") == _value(
        before, name, kind="exact", outcome="hit") + 1
