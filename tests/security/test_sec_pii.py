"""Finding 4: PII left the box on paths the input guard never saw. Replayed on the rig:
PII planted in imported ``/v1`` history (user and assistant turns), a document, recalled
turns and facts, and background fact / summary jobs must be absent from every body the
fake remote provider received; ``mask`` placeholders come back restored for the user;
``block`` refuses before any byte leaves. Plus the wider patterns and the egress layer's
streaming restore, unit by unit."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from assistant import Assistant, Settings
from assistant.errors import EgressBlocked, StreamInterrupted
from assistant.testing import Fault, FaultServer
from assistant.providers import ScriptedModel, build_provider
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest
from assistant.layers.redaction import RedactingModel, Restorer
from guardrails.pii import detect

CARD, CARD_DOTTED = "4111 1111 1111 1111", "4111.1111.1111.1111"
EMAIL, PHONE = "jane.doe@example.com", "+44 20 7946 0958"
IBAN, SPELLED = "de89370400440532013000", "jane dot doe at example dot com"
PLANTED = (CARD, CARD_DOTTED, EMAIL, PHONE, IBAN, SPELLED)
PII_TEXT = (f"My card is {CARD} (the old one {CARD_DOTTED}), mail {EMAIL} or {SPELLED}, "
            f"call {PHONE}, pay to {IBAN}.")


def leaked(bodies: str) -> list[str]:
    """Planted values found in what the provider received (also with separators gone)."""
    compact = re.sub(r"[ .]", "", bodies).lower()
    found = [v for v in PLANTED if v in bodies or v.lower() in bodies.lower()]
    return found + [f"{v} (compact)" for v in (CARD, IBAN)
                    if re.sub(r"[ .]", "", v).lower() in compact]


def assert_nothing_leaked(rig: Any, *, placeholders: tuple[str, ...] = ("[CARD]", "[EMAIL]")) -> None:
    bodies = rig.provider_bodies()
    assert rig.provider.requests, "the provider was never called: the test proves nothing"
    assert leaked(bodies) == []
    for placeholder in placeholders:  # the PII did reach the egress, and left as a placeholder
        assert placeholder in bodies


@pytest.fixture
def audit_lines() -> Iterator[list[dict[str, Any]]]:
    """Audit events as dicts (the ``lastmile.audit`` logger may not propagate)."""
    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    logger, handler = logging.getLogger("lastmile.audit"), Keep()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


# the attacks, on the real server ----------------------------------------------------------
def test_imported_history_user_and_assistant_turns_leave_redacted(rig: Any, audit_lines: list) -> None:
    client = rig.api("alice")
    reply = client.chat.completions.create(model="lastmile", messages=[
        {"role": "user", "content": f"Remember this: {PII_TEXT}"},
        {"role": "assistant", "content": f"Noted: {CARD_DOTTED}, {EMAIL}, {IBAN}, {SPELLED}."},
        {"role": "user", "content": "What did I tell you earlier?"}],
        extra_body={"metadata": {"session_id": "imported-1"}})
    assert reply.choices[0].message.content
    assert_nothing_leaked(rig, placeholders=("[CARD]", "[EMAIL]", "[PHONE]", "[IBAN]"))
    # the chat request (background facts extraction of the same message egresses too, in any order)
    egress = [e for e in audit_lines if e["event"] == "pii_egress"
              and (e.get("purpose") or "chat") == "chat"]
    assert egress and egress[0]["counts"]["card"] >= 3 and egress[0]["user_id"] == "alice"
    assert not leaked(json.dumps(audit_lines))  # counts, never values


def test_document_chunks_leave_redacted(rig: Any, tmp_path: Path) -> None:
    from memory.corpus import Corpus
    from memory.vectors import open_chroma

    doc = tmp_path / "payroll.md"
    doc.write_text(f"# Payroll contact\n\nThe payroll contact for Kestrel Ltd: {PII_TEXT}\n",
                   encoding="utf-8")
    settings = rig.bot.settings
    corpus = Corpus.from_settings(rig.bot.store.engine, open_chroma(settings.chroma_path,
                                                                    settings.chroma_url), settings)
    corpus.ingest([doc], collection="uploads", user_id="alice")
    rig.bot.documents = corpus
    client = rig.api("alice")
    client.chat.completions.create(model="lastmile", messages=[
        {"role": "user", "content": "Who is the payroll contact for Kestrel Ltd?"}])
    bodies = rig.provider_bodies()
    assert "Kestrel" in bodies  # the chunk was in the prompt ...
    assert_nothing_leaked(rig)  # ... without its personal data


def test_recalled_turns_and_facts_leave_redacted(rig: Any) -> None:
    from guardrails import GuardChain
    from memory.facts_extract import Candidate

    bot = rig.bot
    # An earlier session that never went remote: stored and indexed as written.
    earlier = [bot.store.add_message("alice", "earlier", "user", f"For the record: {PII_TEXT}"),
               bot.store.add_message("alice", "earlier", "assistant",
                                     f"I will remember {CARD} and {EMAIL}.")]
    bot.recorder.submit(earlier)
    facts = bot.facts_memory
    guards, facts.guards = facts.guards, GuardChain()  # a fact stored before this guard existed
    try:
        facts.apply("alice", [Candidate(key="email", value=EMAIL, op="add", confidence=1.0)],
                    source=earlier[0])
    finally:
        facts.guards = guards
    bot.flush()
    assert any(f.value == EMAIL for f in facts.facts("alice"))
    rig.provider.reset()
    rig.api("alice").chat.completions.create(model="lastmile", messages=[
        {"role": "user", "content": "For the record, what card and email did I give you?"}],
        extra_body={"metadata": {"session_id": "later"}})
    chat = [r.body for r in rig.provider.requests if "For the record, what card" in json.dumps(r.body)
            and "response_format" not in r.body]  # not the background facts extraction
    assert chat and "[CARD]" in json.dumps(chat[0]) and "[EMAIL]" in json.dumps(chat[0])
    assert_nothing_leaked(rig)


def test_background_fact_and_summary_jobs_leave_redacted(make_rig: Any) -> None:
    rig = make_rig(facts_model="chat", summary_model="chat")
    rig.provider.enqueue(Fault.ok("Noted."), Fault.ok('{"facts": [{"key": "home", "value": "Porto"}]}'))
    rig.api("bob").chat.completions.create(model="lastmile", messages=[
        {"role": "user", "content": f"I live in Porto. {PII_TEXT}"}],
        extra_body={"metadata": {"session_id": "jobs"}})
    bot = rig.bot
    bot.flush()  # the facts job
    last = bot.history("jobs", user_id="bob")[-1]
    rig.provider.enqueue(Fault.ok('{"summary": "Bob lives in Porto and gave contact details."}'))
    bot.jobs.enqueue("summary", {"user_id": "bob", "session_id": "jobs", "upto_id": last.id},
                     user_id="bob")
    bot.flush()  # the summary fold
    structured = [r for r in rig.provider.requests if "JSON schema" in json.dumps(r.body)]
    assert len(structured) >= 2, "the facts and summary jobs did not both reach the provider"
    assert any("Porto" in f.value for f in bot.facts_memory.facts("bob"))  # the job did run
    assert_nothing_leaked(rig)


def test_mask_restores_what_the_provider_echoed_and_stores_it_locally(make_rig: Any) -> None:
    rig = make_rig(pii_mode="mask", facts_enabled=False)
    reply = rig.api("alice").chat.completions.create(model="lastmile", messages=[
        {"role": "user", "content": f"Write to {EMAIL} about card {CARD_DOTTED}"}],
        extra_body={"metadata": {"session_id": "masked"}})
    sent = rig.provider_bodies()
    assert "[EMAIL_1]" in sent and "[CARD_1]" in sent and not leaked(sent)
    text = reply.choices[0].message.content  # the fake echoes the (masked) user message
    assert EMAIL in text and CARD_DOTTED in text and "[EMAIL_1]" not in text
    assert EMAIL in rig.bot.history("masked", user_id="alice")[-1].content


def test_block_refuses_before_any_byte_leaves(make_rig: Any, audit_lines: list) -> None:
    import openai

    rig = make_rig(pii_mode="iban=block,default=redact", facts_enabled=False)
    rig.bot.store.add_message("alice", "blocked", "user", f"my account is {IBAN}")
    rig.bot.store.add_message("alice", "blocked", "assistant", "Noted.")
    with pytest.raises(openai.APIStatusError) as info:
        rig.api("alice").chat.completions.create(model="lastmile", messages=[
            {"role": "user", "content": "Which bank details do you have?"}],
            extra_body={"metadata": {"session_id": "blocked"}})
    assert rig.provider.requests == []  # nothing was sent at all
    assert "bank account number" in str(info.value)  # the user is told why, without the value
    assert IBAN not in str(info.value)
    stored = rig.bot.history("blocked", user_id="alice")[-1]
    assert stored.status == "error" and "EgressBlocked" in (stored.error or "")
    blocked = [e for e in audit_lines if e["event"] == "pii_egress_blocked"]
    assert blocked and blocked[0]["counts"] == {"iban": 1} and IBAN not in json.dumps(blocked)


# the egress layer, by construction --------------------------------------------------------
def test_every_way_of_getting_a_remote_model_passes_the_layer(fake_provider: FaultServer,
                                                              tmp_path: Path) -> None:
    from assistant.providers.openai import OpenAIModel

    keys = {"openai_api_key": "sk-test", "openai_base_url": fake_provider.url + "/v1"}
    ask = ModelRequest([HumanMessage(content=f"card {CARD}")])
    built = build_provider("openai", Settings(**keys))  # type: ignore[arg-type]
    bare = OpenAIModel("m", api_key="sk-test", base_url=fake_provider.url + "/v1")
    for model in (built, bare):  # the factory's layer, and the provider's own enforcement
        fake_provider.reset()
        assert "".join(c.text for c in model.request(ask))
        assert CARD not in json.dumps(fake_provider.requests[0].body)
    settings = Settings(data_dir=tmp_path, index_turns=False, facts_enabled=False,
                        summarize_sessions=False, pii_mode="mask")
    with Assistant(settings, model=bare) as bot:  # injected: the Assistant's modes apply
        fake_provider.reset()
        reply = bot.chat(f"mail {EMAIL}", session_id="s")
        assert EMAIL in reply.text and "[EMAIL_1]" in json.dumps(fake_provider.requests[0].body)
        fake_provider.reset()
        fake_provider.enqueue(Fault.ok('{"city": "Porto"}'))
        assert bot.extract(_Where, f"she lives in Porto, mail {EMAIL}").city == "Porto"
        assert EMAIL not in json.dumps(fake_provider.requests[0].body)


class _Where(__import__("pydantic").BaseModel):
    city: str = ""


class _Chunks(ChatModel):
    """A remote-looking model that streams fixed chunks and records what it was sent."""

    provider, model = "openai", "chunks"

    def __init__(self, chunks: list[str], error: Exception | None = None) -> None:
        self.chunks, self.error, self.sent = chunks, error, []  # type: list[ModelRequest]

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        self.sent.append(request)
        for text in self.chunks:
            yield ModelChunk(text=text)
        if self.error is not None:
            raise self.error
        yield ModelChunk(finish_reason="stop")

    async def arequest(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        for chunk in self.request(request):
            yield chunk


def _text(model: ChatModel, request: ModelRequest) -> str:
    return "".join(c.text for c in model.request(request))


def test_every_message_role_and_content_part_is_redacted() -> None:
    inner = _Chunks(["ok"])
    _text(RedactingModel(inner, "redact"), ModelRequest([
        SystemMessage(content=f"Sources: {IBAN}"), HumanMessage(content=[
            {"type": "text", "text": f"card {CARD_DOTTED}"}, f"mail {SPELLED}"]),
        AIMessage(content="", tool_calls=[{"name": "t", "args": {"to": EMAIL}, "id": "1"}]),
        ToolMessage(content=f"phone {PHONE}", tool_call_id="1")]))
    sent = [m.model_dump() for m in inner.sent[0].messages]
    assert not leaked(json.dumps(sent))
    assert "[IBAN]" in json.dumps(sent) and "[PHONE]" in json.dumps(sent)


def test_mask_placeholders_are_stable_and_split_ones_are_restored() -> None:
    inner = _Chunks(["Writing to [EM", "AIL_", "1] and [EMAIL_2", "], card [CARD_1]", " [EMAIL_9] [no",
                     "te] done ["])
    layer = RedactingModel(inner, "mask")
    text = _text(layer, ModelRequest([SystemMessage(content=f"known: {EMAIL}"),
                                      HumanMessage(content=f"mail {EMAIL} and bob@example.org, "
                                                           f"card {CARD}")]))
    sent = " ".join(str(m.content) for m in inner.sent[0].messages)
    assert sent.count("[EMAIL_1]") == 2 and "[EMAIL_2]" in sent and "[CARD_1]" in sent
    assert text == f"Writing to {EMAIL} and bob@example.org, card {CARD} [EMAIL_9] [note] done ["


def test_placeholders_are_numbered_in_reading_order() -> None:
    inner = _Chunks(["ok"])
    _text(RedactingModel(inner, "mask"), ModelRequest([HumanMessage(
        content=f"first {EMAIL}, then bob@example.org, again {EMAIL}")]))
    assert inner.sent[0].messages[0].content == "first [EMAIL_1], then [EMAIL_2], again [EMAIL_1]"


def test_a_placeholder_already_in_the_text_is_not_ours() -> None:
    inner = _Chunks(["[EMAIL_1] vs [EMAIL_2]"])
    text = _text(RedactingModel(inner, "mask"),
                 ModelRequest([HumanMessage(content=f"literal [EMAIL_1], real {EMAIL}")]))
    assert "real [EMAIL_2]" in str(inner.sent[0].messages[0].content)
    assert text == f"[EMAIL_1] vs {EMAIL}"


def test_interrupted_stream_and_async_path_restore_too() -> None:
    import asyncio

    cut = _Chunks(["to [EMA"], StreamInterrupted("cut", partial="to [EMAIL_1]"))
    with pytest.raises(StreamInterrupted) as info:
        _text(RedactingModel(cut, "mask"), ModelRequest([HumanMessage(content=EMAIL)]))
    assert info.value.partial == f"to {EMAIL}"

    async def run() -> str:
        layer = RedactingModel(_Chunks(["[EMAIL", "_1]!"]), "mask")
        return "".join([c.text async for c in layer.arequest(ModelRequest([HumanMessage(content=EMAIL)]))])
    assert asyncio.run(run()) == f"{EMAIL}!"


def test_restorer_holds_only_what_may_be_a_placeholder() -> None:
    restorer = Restorer({"[CARD_1]": CARD})
    assert restorer.feed("a [") == "a " and restorer.feed("CARD_") == ""
    assert restorer.feed("1] b [x] [") == f"{CARD} b [x] " and restorer.flush() == "["
    assert Restorer({}).feed("[CARD_1") == "[CARD_1"  # nothing masked: pure pass-through


def test_block_kind_raises_before_the_inner_model_is_called() -> None:
    inner = _Chunks(["never"])
    with pytest.raises(EgressBlocked) as info:
        _text(RedactingModel(inner, "card=block,default=redact"),
              ModelRequest([AIMessage(content=f"your card {CARD_DOTTED}")]))
    assert inner.sent == [] and info.value.kinds == ["card"]
    assert "4111" not in str(info.value) + info.value.user_message


def test_local_models_are_not_wrapped() -> None:
    local = ScriptedModel(["hi"], provider="local")
    assert build_provider("scripted", Settings()).provider == "scripted"
    from assistant.layers.redaction import guard_egress

    assert guard_egress(local, "redact") is local


# the wider patterns --------------------------------------------------------------------
@pytest.mark.parametrize("value, kind", [
    (CARD_DOTTED, "card"), ("5555.5555.5555.4444", "card"), (IBAN, "iban"),
    ("gb82west12345698765432", "iban"), ("de89 3704 0044 0532 0130 00", "iban"),
    (SPELLED, "email"), ("jane(at)example(dot)com", "email"), ("jane [at] example [dot] com", "email"),
    ("jane {at} example {dot} com", "email"), ("JANE AT EXAMPLE DOT COM", "email"),
    ("jane.doe at example.com", "email"), ("jane@example dot com", "email"),
    ("415.555.2671", "phone"), ("+44.20.7946.0958", "phone"), ("06.12.34.56.78", "phone"),
])
def test_written_out_forms_are_found(value: str, kind: str) -> None:
    assert [(f.kind, f.text) for f in detect(f"Here: {value}. Thanks")] == [(kind, value)]


@pytest.mark.parametrize("text", [
    "4111.1111.1111.1112 fails Luhn",
    "ratio 4111111111111111.5", "ab12cdefghijklmnop1234", "de89370400440532013001",
    "have a look at python.org", "we arrived at the dot com boom", "meet at 5 dot 30",
    "price 1.299.99, version 4.2.1, date 12.05.2024",
])
def test_written_out_near_misses_pass(text: str) -> None:
    assert detect(text) == []


def test_spelled_out_email_scan_is_linear() -> None:
    import time

    started = time.perf_counter()
    for text in ("a dot " * 5000 + "x", " at ".join(["a dot b"] * 2000), "a (dot) " * 3000):
        detect(text)
    assert time.perf_counter() - started < 2.0


def test_a_blocked_request_can_fall_back_to_the_local_model() -> None:
    from assistant.layers.fallback import FallbackModel

    remote, local = _Chunks(["never"]), ScriptedModel(["answered here"], provider="local")
    chain = FallbackModel([RedactingModel(remote, "card=block"), local], fallback_on=(EgressBlocked,))
    assert _text(chain, ModelRequest([HumanMessage(content=f"card {CARD}")])) == "answered here"
    assert remote.sent == [] and CARD in str(local.requests[0].messages[0].content)


def test_a_blocked_facts_job_keeps_the_rules_facts_and_is_not_retried(tmp_path: Path) -> None:
    remote = ScriptedModel(["Noted."], provider="openai", model="m")
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'f.db'}",
                        index_turns=False, summarize_sessions=False, facts_model="chat",
                        pii_mode="phone=block,default=redact")
    with Assistant(settings, model=remote) as bot:
        # (a chat turn would refuse the phone up front; an imported message is not asked)
        said = bot.store.add_message("default", "s", "user",
                                     "I live in Porto. Call the office on +44 20 7946 0958 please.")
        bot.recorder.submit([said])  # type: ignore[union-attr]
        bot.flush()
        assert [f.value for f in bot.facts_memory.facts("default")] == ["Porto"]  # type: ignore[union-attr]
        assert remote.requests == []  # the facts call was refused, not sent
        jobs = bot.jobs.engine  # type: ignore[union-attr]
    from sqlalchemy import text

    with jobs.connect() as db:
        assert db.execute(text("select status from jobs")).scalars().all() == ["done"]
