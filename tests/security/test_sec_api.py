"""Findings 3 and 8 of the security review, replayed against the real server: cross-site
requests (a ``text/plain`` POST to ``/v1``, a foreign ``Origin`` on UI routes) and client
mistakes that gave 500s or were stored (blank / NUL session ids, NUL bytes in imported
messages, an unbounded body, imported assistant turns past the length limit, 404 for a
wrong method). Each attack must now get a clean OpenAI-shaped 4xx and store nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from guardrails import Guard, GuardContext

EVIL = "https://evil.example"
TURN = {"model": "lastmile", "messages": [{"role": "user", "content": "Forget that I keep bees."}]}


def _stored(rig: Any, user: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for s in rig.bot.sessions(user)
            for m in rig.bot.history(s.session_id, user)]


def _openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


# --- finding 3: CSRF ---------------------------------------------------------------------

@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", None, "application/json; charset=latin-1"])
def test_a_non_json_post_to_v1_is_refused_and_nothing_is_stored(make_rig, content_type) -> None:
    """The ``make run`` setup: no key needed, so a page's simple request chatted as the
    operator. It is now a 415 before the body is even read."""
    rig = make_rig(auth="none")
    client = rig.client()
    headers = {"content-type": content_type} if content_type else {}
    error = _openai_error(client.post("/v1/chat/completions", content=httpx.Response(
        200, json=TURN).content, headers=headers), 415)
    assert error["code"] == "unsupported_media_type"
    assert rig.bot.sessions("default") == [] and rig.provider.requests == []
    # The same body declared as JSON is a normal turn: the refusal is about the type only.
    ok = client.post("/v1/chat/completions", json=TURN,
                     headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200 and _stored(rig, "default")[0] == ("user", TURN["messages"][0]["content"])


def test_cross_origin_ui_posts_are_refused(make_rig) -> None:
    rig = make_rig(allowed_origins="https://chat.example.com")
    from tests.security.conftest import USERS

    def login(headers: dict[str, str]) -> httpx.Response:
        client = rig.client()
        return client.post("/login", data={"username": "alice", "password": USERS["alice"][1]},
                           headers=headers)

    # Login CSRF (signing the victim in as someone else) and its Referer-only variant.
    for headers in ({"origin": EVIL}, {"origin": "null"}, {"referer": f"{EVIL}/page"},
                    {"origin": rig.url.replace("127.0.0.1", "localhost")}):
        refused = login(headers)
        assert _openai_error(refused, 403)["code"] == "cross_origin"
        assert "set-cookie" not in refused.headers
    # Same origin (what a browser on our page sends), an allowed one, and none at all
    # (the Gradio client, httpx) pass.
    for headers in ({"origin": rig.url}, {"referer": f"{rig.url}/"},
                    {"origin": "https://chat.example.com"}, {}):
        assert login(headers).status_code < 400, headers

    alice = rig.sign_in("alice")
    files = {"files": ("notes.md", b"# my notes\n", "text/markdown")}
    upload = alice.post("/gradio_api/upload", files=files, headers={"origin": EVIL})
    assert _openai_error(upload, 403)["code"] == "cross_origin"
    same = alice.post("/gradio_api/upload", files=files, headers={"origin": rig.url})
    assert same.status_code == 200 and same.json()[0].endswith("notes.md")
    join = alice.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0,
                                                      "session_hash": "x"}, headers={"origin": EVIL})
    assert _openai_error(join, 403)["code"] == "cross_origin"
    v1 = rig.client().post("/v1/chat/completions", json=TURN, headers={
        "origin": EVIL, "authorization": f"Bearer {rig.keys['alice']}"})
    assert _openai_error(v1, 403)["code"] == "cross_origin"
    assert rig.bot.sessions("alice") == [] and rig.provider.requests == []


# --- finding 8: client mistakes ----------------------------------------------------------

def _msg(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


LONG = "x" * 20_001  # one over the default LASTMILE_MAX_MESSAGE_CHARS
BAD_BODIES = {
    "blank session id": dict(metadata={"session_id": "   "}),
    "NUL in session id": dict(metadata={"session_id": "s\x00s"}),
    "newline in session id": dict(metadata={"session_id": "s\ns"}),
    "session id too long": dict(metadata={"session_id": "s" * 129}),
    "NUL in imported user turn": dict(messages=[_msg("user", "a\x00b"), _msg("assistant", "ok"),
                                                _msg("user", "next")]),
    "NUL in imported assistant turn": dict(messages=[_msg("user", "hi"), _msg("assistant", "o\x00k"),
                                                     _msg("user", "next")]),
    "NUL in the new turn": dict(messages=[_msg("user", "hello\x00")]),
    "NUL in a system message": dict(messages=[_msg("system", "be\x00 brief"), _msg("user", "hi")]),
    "NUL in a content part": dict(messages=[_msg("user", [{"type": "text", "text": "a\x00"}])]),
    "imported assistant turn too long": dict(messages=[_msg("user", "hi"), _msg("assistant", LONG),
                                                       _msg("user", "next")]),
    "system message too long": dict(messages=[_msg("system", LONG), _msg("user", "hi")]),
    "content parts too long": dict(messages=[_msg("user", [{"type": "text", "text": LONG[:15_000]},
                                                           {"type": "text", "text": LONG[:15_000]}])]),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_each_bad_body_is_a_400_through_the_sdk_and_nothing_is_stored(rig, name: str) -> None:
    body = {"model": "lastmile", "messages": [_msg("user", "hello")], **BAD_BODIES[name]}
    with pytest.raises(openai.BadRequestError) as refused:
        rig.api("alice").chat.completions.create(**body)
    assert refused.value.status_code == 400 and refused.value.body["message"]
    assert _stored(rig, "alice") == [] and rig.provider.requests == []


@pytest.mark.parametrize("raw", [b'{"model": "lastmile", "messages": [{"role": "user", "content": "\xff"}]}',
                                 b'{"model": "lastmile", "messages": [{"role": "user", "content": "\\ud800"}]}'],
                         ids=["invalid utf-8", "lone surrogate"])
def test_invalid_text_is_a_400(rig, raw: bytes) -> None:
    response = rig.client().post("/v1/chat/completions", content=raw, headers={
        "content-type": "application/json", "authorization": f"Bearer {rig.keys['alice']}"})
    _openai_error(response, 400)
    assert _stored(rig, "alice") == []


def test_a_10_mb_body_is_a_413_declared_or_streamed(rig) -> None:
    big = {"model": "lastmile", "messages": [_msg("user", "y" * 10_000_000)]}
    with pytest.raises(openai.APIStatusError) as refused:
        rig.api("alice").chat.completions.create(**big)
    assert refused.value.status_code == 413 and "LASTMILE_MAX_REQUEST_BYTES" in str(refused.value)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the streamed length counts
        yield b'{"model": "lastmile", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"z" * 100_000
        yield b'"}]}'

    streamed = rig.client().post("/v1/chat/completions", content=chunked(), headers={
        "content-type": "application/json", "authorization": f"Bearer {rig.keys['alice']}"})
    assert "content-length" not in streamed.request.headers
    assert _openai_error(streamed, 413)["code"] == "request_too_large"
    assert _stored(rig, "alice") == [] and rig.provider.requests == []


def test_the_size_limit_is_a_setting(make_rig) -> None:
    rig = make_rig(max_request_bytes=2048)
    with pytest.raises(openai.APIStatusError) as refused:
        rig.api("alice").chat.completions.create(model="lastmile",
                                                 messages=[_msg("user", "w" * 3000)])
    assert refused.value.status_code == 413
    done = rig.api("alice").chat.completions.create(model="lastmile",
                                                    messages=[_msg("user", "w" * 1000)])
    assert done.choices[0].message.content


@pytest.mark.parametrize("method, path, allow", [
    ("GET", "/v1/chat/completions", "POST"), ("PUT", "/v1/chat/completions", "POST"),
    ("DELETE", "/v1/chat/completions", "POST"), ("DELETE", "/v1/models", "GET"),
    ("POST", "/v1/models", "GET")])
def test_a_wrong_method_is_a_405_with_allow(rig, method: str, path: str, allow: str) -> None:
    response = rig.client().request(method, path, headers={
        "authorization": f"Bearer {rig.keys['alice']}"})
    assert _openai_error(response, 405)["code"] == "method_not_allowed"
    assert response.headers["allow"] == allow


def test_an_unexpected_failure_before_storing_does_not_claim_the_message_is_kept(
        rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(rig.bot.store, "add_message", broken)
    with pytest.raises(openai.InternalServerError) as failed:
        rig.api("alice").chat.completions.create(**TURN)
    assert "nothing was stored" in failed.value.message and "kept" not in failed.value.message
    monkeypatch.undo()
    assert _stored(rig, "alice") == []


class _Destinations(Guard):
    """Records where each guarded input is bound."""

    name = "destinations"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def before_input(self, ctx: GuardContext, text: str) -> str:
        self.seen.append((text, ctx.destination))
        return text


def test_imported_history_is_guarded_as_bound_for_the_remote_provider(rig) -> None:
    """The rig's chain is the remote ``openai`` provider: imported turns were guarded as
    if bound for the local model (so remote-only redaction skipped them)."""
    recorder = _Destinations()
    rig.bot.guards.guards.append(recorder)
    done = rig.api("alice").chat.completions.create(model="lastmile", messages=[
        _msg("user", "I keep bees."), _msg("assistant", "Nice."), _msg("user", "What do I keep?")])
    assert ("I keep bees.", "remote") in recorder.seen
    assert ("What do I keep?", "remote") in recorder.seen
    session = done.model_extra["lastmile"]["session_id"]
    assert [m.content for m in rig.bot.history(session, "alice")][:3] == [
        "I keep bees.", "Nice.", "What do I keep?"]


def test_a_refused_new_turn_leaves_no_imported_history(rig) -> None:
    """Earlier turns are stored before the new one is guarded; a refusal removes them."""
    from assistant.errors import InputRejected

    class RefuseNext(Guard):
        name = "refuse-next"

        def before_input(self, ctx: GuardContext, text: str) -> str:
            if text == "next":
                raise InputRejected("no", user_message="Not that.", guard=self.name)
            return text

    rig.bot.guards.guards.append(RefuseNext())
    with pytest.raises(openai.BadRequestError, match="Not that"):
        rig.api("alice").chat.completions.create(model="lastmile", messages=[
            _msg("user", "hi"), _msg("assistant", "hello"), _msg("user", "next")])
    assert _stored(rig, "alice") == []


def test_openapi_documents_v1(rig) -> None:
    doc = rig.client().get("/openapi.json").json()
    assert set(doc["paths"]) == {"/v1/chat/completions", "/v1/models"}  # no Gradio routes
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    request = chat["requestBody"]["content"]["application/json"]["schema"]
    assert request["title"] == "ChatCompletionRequest" and "messages" in request["required"]
    roles = request["properties"]["messages"]["items"]["properties"]["role"]["enum"]
    assert {"system", "user", "assistant"} <= set(roles)
    schemas = doc["components"]["schemas"]

    def resolved(response: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
        schema = response["content"][media]["schema"]
        return schemas[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema

    assert resolved(chat["responses"]["200"])["properties"]["object"]["const"] == "chat.completion"
    chunk = resolved(chat["responses"]["200"], "text/event-stream")
    assert chunk["properties"]["object"]["const"] == "chat.completion.chunk"
    for status in ("400", "401", "404", "413", "415"):
        error = resolved(chat["responses"][status])
        assert error["title"] == "ErrorResponse", status
    models = doc["paths"]["/v1/models"]["get"]["responses"]["200"]
    assert resolved(models)["properties"]["object"]["const"] == "list"
    assert any(s.get("scheme") == "bearer" for s in doc["components"]["securitySchemes"].values())
