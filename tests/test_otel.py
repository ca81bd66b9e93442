"""Issue 15 (traces): `lastmile serve` exports its spans over OTLP/HTTP to a real
receiver on loopback that decodes the protobuf with opentelemetry-proto; a turn that
falls back from a failing provider (the fault server, through the real OpenAI SDK) to
another shows the turn span, its stage spans, both attempts and the GenAI attributes.
An unreachable collector is logged once and costs a turn nothing."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from assistant import Assistant, Settings, telemetry
from assistant.testing import Fault, FaultServer

LASTMILE = str(Path(sys.executable).with_name("lastmile"))
SECRET = "my locker code is 4471"  # text that must never reach a span unless opted in


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


class OtlpReceiver:
    """A loopback OTLP/HTTP trace receiver: decodes each ExportTraceServiceRequest and
    keeps the spans as dicts (name, ids, parent, attributes, status code)."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:  # stdlib naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                owner._add(request, self.path)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _add(self, request: ExportTraceServiceRequest, path: str) -> None:
        assert path == "/v1/traces"
        self.requests += 1
        for resource_spans in request.resource_spans:
            service = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name, "trace": span.trace_id.hex(), "id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(), "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano, "status": span.status.code,
                        "service": service.get("service.name"),
                        "attributes": {a.key: _value(a.value) for a in span.attributes}})

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in list(self.spans) if predicate(s)]
            if found:
                return found
            time.sleep(0.2)
        names = sorted({s["name"] for s in self.spans})
        pytest.fail(f"no such span within {timeout}s; received: {names}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    yield r
    r.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([LASTMILE, "serve", "--port", str(port)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"serve did not come up: {out[-2000:]}")
            time.sleep(0.3)


def test_serve_exports_the_turn_its_stages_and_both_provider_attempts(tmp_path, receiver) -> None:
    with FaultServer() as fs:
        fs.enqueue(Fault.error(500, "the primary is down"))
        port = _free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LASTMILE_", "OTEL_", "OPENAI_"))}
        env.update({
            "LASTMILE_DATA_DIR": str(tmp_path / "d"), "GRADIO_ANALYTICS_ENABLED": "False",
            "LASTMILE_PROVIDERS": "openai:test-model,scripted", "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": fs.url + "/v1", "LASTMILE_RETRY_ATTEMPTS": "1",
            "LASTMILE_OTEL_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200",
            "LASTMILE_SAMPLE_CORPUS": "false", "LASTMILE_INDEX_TURNS": "false",
            "LASTMILE_FACTS_MODEL": "rules", "LASTMILE_SUMMARY_MODEL": "extractive"})
        proc = _serve(env, port)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused",
                                   max_retries=0)
            done = client.chat.completions.create(
                model="lastmile", messages=[{"role": "user", "content": SECRET}],
                metadata={"session_id": "otel-s1"})
            assert done.choices[0].message.content == f"(scripted) you said: {SECRET}"
            turn = receiver.wait_for(lambda s: s["name"] == "lastmile.turn")[0]
            # the facts job for the stored message runs in its own span
            job = receiver.wait_for(lambda s: s["name"] == "job facts")[0]
        finally:
            proc.terminate()
            proc.wait(30)
    assert fs.requests, "the primary was really called"
    a = turn["attributes"]
    assert turn["service"] == "lastmile"
    by_id = {s["id"]: s for s in receiver.spans}
    root = turn
    while root["parent"]:  # FastAPI's own request span, when it traces, is the turn's ancestor
        root = by_id[root["parent"]]
    assert root is turn or root["name"] == "POST /v1/chat/completions"
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.conversation.id"] == "otel-s1"
    assert a["gen_ai.provider.name"] == "scripted" and a["lastmile.status"] == "ok"
    assert a["lastmile.fallback"] is True and a["lastmile.attempts"] == 2
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert "lastmile.memory.ids" in a

    spans = [s for s in receiver.spans if s["trace"] == turn["trace"]]
    children = [s for s in spans if s["parent"] == turn["id"]]
    stages = {s["name"] for s in children if "lastmile.stage" in s["attributes"]}
    assert {"guards", "context", "verification", "storage"} <= stages
    context = next(s for s in children if s["name"] == "context")
    assert {s["name"] for s in spans if s["parent"] == context["id"]} & {"recall", "summary", "documents"}
    for child in children:  # children sit inside their turn
        assert turn["start"] <= child["start"] <= child["end"] <= turn["end"]

    attempts = sorted((s for s in children if s["name"].startswith("chat ")), key=lambda s: s["start"])
    assert [s["attributes"]["gen_ai.provider.name"] for s in attempts] == ["openai", "scripted"]
    first, second = (s["attributes"] for s in attempts)
    assert first["error.type"] == "ProviderUnavailable" and attempts[0]["status"] == 2  # ERROR
    assert first["gen_ai.request.model"] == "test-model" and first["gen_ai.conversation.id"] == "otel-s1"
    assert "error.type" not in second and second["lastmile.status"] == "ok"
    assert second["gen_ai.usage.output_tokens"] > 0

    assert job["attributes"]["lastmile.job.kind"] == "facts" and "error.type" not in job["attributes"]
    # Content capture is off by default: the message text is on no span.
    assert all(SECRET not in str(s["attributes"]) for s in receiver.spans)


def _scripted(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path / "d", providers="scripted", index_turns=False,
                    facts_model="rules", summary_model="extractive", sample_corpus=False, **extra)


def test_an_unreachable_collector_is_logged_once_and_costs_a_turn_nothing(tmp_path, caplog,
                                                                           monkeypatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    dead = f"http://127.0.0.1:{_free_port()}/v1/traces"  # nothing listens there
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # exports run while the turns do
    real_export = OTLPSpanExporter.export
    entered, gate = threading.Event(), threading.Event()
    on_turn_thread: list[str] = []
    turns_running = threading.Event()

    def export(self: Any, batch: Any) -> Any:
        """The real exporter (to the dead endpoint), held until the test lets it go."""
        if turns_running.is_set() and threading.current_thread() is threading.main_thread():
            on_turn_thread.append("export ran on the turn's thread")
        else:
            entered.set()
            gate.wait(60)
        return real_export(self, batch)

    monkeypatch.setattr(OTLPSpanExporter, "export", export)
    provider = telemetry.build_provider(dead, timeout_s=1.0)
    telemetry.use_provider(provider)
    try:
        with Assistant(_scripted(tmp_path)) as bot, \
                caplog.at_level(logging.WARNING, logger="assistant.telemetry"):
            turns_running.set()
            first = bot.chat("traced first", session_id="s")
            assert entered.wait(30), "the batch processor never exported"
            # An export is under way and stuck: turns still run to the end meanwhile.
            replies = [first, *(bot.chat(f"traced {i}", session_id="s") for i in range(5))]
            assert not gate.is_set()
            turns_running.clear()
            gate.set()
            provider.force_flush(10_000)  # the failed exports (the held one, then the rest)
            bot.chat("one more", session_id="s")
            provider.force_flush(10_000)  # and another
    finally:
        gate.set()
        telemetry.use_provider(None)
        provider.shutdown()
    assert all(r.ok for r in replies)
    assert on_turn_thread == []  # spans leave on the processor's thread, never a turn's
    failures = [r for r in caplog.records if "could not export spans" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_provider(provider)
    yield exporter
    telemetry.use_provider(None)
    provider.shutdown()


def test_message_text_is_on_spans_only_when_opted_in(tmp_path, spans) -> None:
    with Assistant(_scripted(tmp_path)) as bot:
        bot.chat(SECRET, session_id="s")
    assert all(SECRET not in str(dict(s.attributes or {})) for s in spans.get_finished_spans())
    spans.clear()
    with Assistant(_scripted(tmp_path, otel_capture_content=True)) as bot:
        bot.chat(SECRET, session_id="s2")
    turn = next(s for s in spans.get_finished_spans() if s.name == "lastmile.turn")
    assert SECRET in str(turn.attributes["gen_ai.input.messages"])
    assert SECRET in str(turn.attributes["gen_ai.output.messages"])
    with Assistant(_scripted(tmp_path)) as bot:  # back off for later tests in this process
        assert not telemetry._capture_content


def test_a_rejected_input_ends_its_turn_span_with_the_error(tmp_path, spans) -> None:
    from assistant.errors import InputRejected

    with Assistant(_scripted(tmp_path)) as bot, pytest.raises(InputRejected):
        bot.chat("   ", session_id="s")
    turn = next(s for s in spans.get_finished_spans() if s.name == "lastmile.turn")
    assert turn.attributes["error.type"] == "InputRejected"
    guards = next(s for s in spans.get_finished_spans() if s.name == "guards")
    assert guards.parent is not None and guards.parent.span_id == turn.context.span_id
