"""OpenTelemetry traces of turns, from the typed turn state.

One span per turn (``lastmile.turn``), a child per stage (``stages.timed`` opens them:
guards, context with its recall / documents / summary steps, verification, storage),
one ``chat {model}`` span per provider attempt (made from the ledger's record of the
attempt, so every retry and fallback member is its own span, with ``error.type`` when it
failed) and one per background job (``memory.workers``). Attributes follow the GenAI
semantic conventions (``gen_ai.*``) plus lastmile's own (``lastmile.groundedness``,
``lastmile.memory.ids``, ``lastmile.fallback``); message text only with
``LASTMILE_OTEL_CAPTURE_CONTENT``.

Why spans are opened with explicit parents instead of "the current span": a turn is a
generator that a web server may resume from another thread or context at every chunk,
and OpenTelemetry's context tokens must be detached in the context that attached them.

Tracing is off (the API's no-op tracer, nearly free) unless ``LASTMILE_OTEL_ENDPOINT``
or the standard ``OTEL_EXPORTER_OTLP_*`` variables are set. Spans leave through a
``BatchSpanProcessor``: a background thread exports them, so an unreachable collector
costs a turn nothing; it is logged once per outage, not once per batch. The turn's
metrics (``assistant.metrics``) are fed at the same two choke points.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from assistant import metrics
from assistant.metrics import CallFacts, TurnOutcome
from assistant.settings import Settings
from assistant.turn import TurnState

__all__ = ["TRACE_KEY", "TurnTrace", "build_provider", "call_finished", "configure", "finish_turn",
           "step", "traced", "traces_endpoint", "turn_trace", "use_provider"]

log = logging.getLogger(__name__)
R = TypeVar("R")

#: The ``ModelRequest.metadata`` key carrying the turn's ``TurnTrace`` to the ledger layer.
TRACE_KEY = "trace"
_EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                     "opentelemetry.exporter.otlp.common.http")
_lock = threading.Lock()
_provider: Any = None  # the SDK TracerProvider this process installed, if any
_tracer: Tracer = trace.get_tracer("lastmile")
_capture_content = False


@dataclass(frozen=True)
class Attempt:
    """A provider attempt made for a turn: who, and how it ended."""

    provider: str
    status: str
    error_kind: str | None


def traces_endpoint(settings: Settings) -> str | None:
    """Where spans go: ``LASTMILE_OTEL_ENDPOINT`` (a base URL, ``/v1/traces`` appended),
    ``""`` when only the standard variables are set (the exporter reads them), or None."""
    if settings.otel_endpoint:
        base = settings.otel_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else base + "/v1/traces"
    return "" if settings.otel_exporter_endpoint else None


def configure(settings: Settings) -> bool:
    """Apply ``settings`` to this process's telemetry; True when spans are exported.

    The exporter is installed once per process (OpenTelemetry's provider is global);
    content capture and the metric labels follow the latest settings.
    """
    global _capture_content
    _capture_content = settings.otel_capture_content
    metrics.configure(settings.metrics_labels)
    endpoint = traces_endpoint(settings)
    with _lock:
        if _provider is not None:
            return True
        if endpoint is None:
            return False
        provider = build_provider(endpoint or None)
        trace.set_tracer_provider(provider)
        use_provider(provider)
    log.info("tracing: spans go to %s", endpoint or "the OTEL_EXPORTER_OTLP_* endpoint")
    return True


def build_provider(endpoint: str | None, *, timeout_s: float | None = None) -> Any:
    """An SDK ``TracerProvider`` batching spans to an OTLP/HTTP ``endpoint`` (None: the
    standard variables). SDK imports stay here: with tracing off they never load."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "lastmile"}))  # OTEL_SERVICE_NAME wins
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=timeout_s)
    quiet = cast(SpanExporter, _LogOnce(exporter, endpoint or "OTLP"))  # an exporter by duck type
    provider.add_span_processor(BatchSpanProcessor(quiet))
    return provider


def use_provider(provider: Any) -> None:
    """Send turn and provider spans to ``provider`` (tests pass their own)."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("lastmile") if provider is not None else trace.get_tracer("lastmile")


class _LogOnce:
    """Wraps the OTLP exporter: one warning when exports start failing, one line when
    they work again; the exporter's own per-batch error logging is silenced."""

    def __init__(self, inner: Any, where: str) -> None:
        self.inner, self.where = inner, where
        self.failing = False
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - an exporter bug must not kill the export thread
            log.debug("span export raised: %s", exc)
            result = SpanExportResult.FAILURE
        ok = result == SpanExportResult.SUCCESS
        if not ok and not self.failing:
            log.warning("tracing: could not export spans to %s (dropping them until it answers; "
                        "turns are not affected)", self.where)
        elif ok and self.failing:
            log.info("tracing: exporting spans to %s again", self.where)
        self.failing = not ok
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def _split(label: str) -> tuple[str, str]:
    """``openai:gpt-4o`` → (``openai``, ``gpt-4o``); ``scripted`` → (``scripted``, ``""``)."""
    name, _, model = label.partition(":")
    return name, model


def _error_type(error: str | None) -> str | None:
    """The type name from an outcome's ``"Type: message"`` error (``"cancelled"`` as is)."""
    if not error:
        return None
    head = error.split(":", 1)[0].strip()
    return head if head.isidentifier() else "error"


class TurnTrace:
    """One turn's spans: the root, the stages open now, the provider attempts so far."""

    def __init__(self, state: TurnState, tracer: Tracer) -> None:
        self._tracer = tracer
        # Under the current span when there is one (the web framework's request span).
        self.root = tracer.start_span("lastmile.turn", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.conversation.id": state.session_id,
            "lastmile.destination": state.destination})
        self._open: list[Span] = []
        self.attempts: list[Attempt] = []
        self.ended = False

    def parent(self) -> Any:
        """The context a new child span hangs from: the innermost open stage, or the turn."""
        return trace.set_span_in_context(self._open[-1] if self._open else self.root)

    @contextmanager
    def stage(self, name: str) -> Iterator[Span]:
        span = self._tracer.start_span(name, context=self.parent(),
                                       attributes={"lastmile.stage": name})
        self._open.append(span)
        try:
            yield span
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            if name == "guards" and len(self._open) == 1:  # rejected before anything was stored
                self.root.set_attribute("error.type", type(exc).__name__)
                self.root.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                self._end_root()
            raise
        finally:
            if span in self._open:
                self._open.remove(span)
            span.end()

    def _end_root(self) -> None:
        if not self.ended:
            self.ended = True
            self.root.end()


def turn_trace(state: TurnState) -> TurnTrace:
    """The turn's trace, started at its first stage."""
    current = state.trace
    if not isinstance(current, TurnTrace):
        current = state.trace = TurnTrace(state, _tracer)
    return current


@contextmanager
def step(state: TurnState, name: str) -> Iterator[None]:
    """A traced step inside a stage (recall, documents, summary) that has no timing of
    its own in ``stages_ms``."""
    with turn_trace(state).stage(name):
        yield


def traced(state: TurnState, name: str, fn: Callable[..., R]) -> Callable[..., R]:
    """``fn`` run as a ``step`` of the turn (the context's blocks are callables)."""
    def run(*args: Any, **kwargs: Any) -> R:
        with step(state, name):
            return fn(*args, **kwargs)
    return run


def call_finished(record: CallFacts, metadata: Mapping[str, Any], started_ns: int) -> None:
    """One provider attempt ended (called by ``LedgerModel`` with its ledger record):
    its span (under the turn's, or the current job's) and its metrics. Never raises:
    observing a call must not change how it ends."""
    try:
        _call_finished(record, metadata, started_ns)
    except Exception:  # telemetry is best effort: log it, carry on
        log.exception("telemetry: could not record a provider attempt")


def _call_finished(record: CallFacts, metadata: Mapping[str, Any], started_ns: int) -> None:
    metrics.observe_call(record)
    owner = metadata.get(TRACE_KEY)
    turn = owner if isinstance(owner, TurnTrace) else None
    name, model = _split(record.provider)
    model = getattr(record, "model", None) or model
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": name,
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "lastmile.provider": record.provider, "lastmile.status": record.status,
        "lastmile.purpose": record.purpose or ""}
    if model:
        attributes["gen_ai.request.model"] = model
    if session := metadata.get("session_id"):
        attributes["gen_ai.conversation.id"] = str(session)
    if record.cost_usd is not None:
        attributes["lastmile.cost_usd"] = record.cost_usd
    if record.first_token_ms is not None:
        attributes["lastmile.first_token_ms"] = round(record.first_token_ms, 2)
    failed = record.status not in ("ok", "cancelled")
    if failed:
        attributes["error.type"] = record.error_kind or record.status
    tracer = turn._tracer if turn is not None else _tracer
    span = tracer.start_span(f"chat {model or name}", context=turn.parent() if turn else None,
                             kind=SpanKind.CLIENT, attributes=attributes, start_time=started_ns)
    if failed:
        span.set_status(Status(StatusCode.ERROR, record.error_kind or record.status))
    span.end(end_time=started_ns + int((record.latency_ms or 0.0) * 1e6))
    if turn is not None:
        turn.attempts.append(Attempt(record.provider, record.status, record.error_kind))


def finish_turn(state: TurnState, out: TurnOutcome, *, question: str = "", answer: str = "") -> None:
    """The turn is stored: its span gets the outcome's attributes and ends; metrics count
    it. Never raises (a stored reply must not turn into an error here)."""
    try:
        _finish_turn(state, out, question, answer)
    except Exception:  # telemetry is best effort: log it, carry on
        log.exception("telemetry: could not record a turn")


def _finish_turn(state: TurnState, out: TurnOutcome, question: str, answer: str) -> None:
    turn = turn_trace(state)
    first = turn.attempts[0].provider if turn.attempts else None
    metrics.observe_turn(state, out, first_provider=first)
    if turn.ended:
        return
    root = turn.root
    name, model = _split(out.provider or "")
    memory_ids = [str(s.get("id")) for s in state.snippets if str(s.get("id")) not in state.sources]
    attributes: dict[str, Any] = {
        "gen_ai.provider.name": name, "gen_ai.usage.input_tokens": out.prompt_tokens,
        "gen_ai.usage.output_tokens": out.completion_tokens, "lastmile.status": out.status,
        "lastmile.provider": out.provider or "",
        "lastmile.fallback": len({a.provider for a in turn.attempts}) > 1,
        "lastmile.attempts": len(turn.attempts), "lastmile.memory.ids": memory_ids,
        "lastmile.document.ids": sorted(state.sources)}
    if model:
        attributes["gen_ai.request.model"] = model
    if out.first_token_ms is not None:
        attributes["lastmile.first_token_ms"] = round(out.first_token_ms, 2)
    for key, value in (("lastmile.groundedness", state.groundedness),
                       ("lastmile.confidence", state.confidence),
                       ("lastmile.review_status", state.review_status)):
        if value is not None:
            attributes[key] = value
    if _capture_content:
        attributes["gen_ai.input.messages"] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": question}]}], ensure_ascii=False)
        attributes["gen_ai.output.messages"] = json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}], ensure_ascii=False)
    root.set_attributes(attributes)
    if out.status != "ok":
        kind = _error_type(out.error) or out.status
        root.set_attribute("error.type", kind)
        root.set_status(Status(StatusCode.ERROR, kind))
    turn._end_root()
