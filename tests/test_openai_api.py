"""The OpenAI-compatible endpoint, driven by the official ``openai`` SDK over loopback HTTP
against the real server (FastAPI + mounted Gradio, uvicorn in a thread)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from assistant import Assistant, ScriptedModel, Settings
from memory.accounts import Accounts


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


def _serve(settings: Settings, model: ScriptedModel, live_server) -> Iterator[tuple[Assistant, str]]:
    with Assistant(settings, model=model) as bot:
        url, _ = live_server(bot)
        yield bot, url


@pytest.fixture
def served(settings: Settings, model: ScriptedModel, live_server) -> Iterator[tuple[Assistant, str]]:
    yield from _serve(settings, model, live_server)


@pytest.fixture
def keyed(settings: Settings, model: ScriptedModel, live_server) -> Iterator[tuple[Assistant, str]]:
    yield from _serve(settings.model_copy(update={"auth": "password"}), model, live_server)


def test_sdk_gets_a_plain_completion_that_is_stored(served, model: ScriptedModel) -> None:
    bot, url = served
    model.enqueue("Lisbon is lovely in May.")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    done = client.chat.completions.create(
        model="lastmile", messages=[{"role": "user", "content": "Where should I go in May?"}])
    assert done.choices[0].message.content == "Lisbon is lovely in May."
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens > 0
    session = done.model_extra["lastmile"]["session_id"]
    history = bot.history(session, user_id="default")
    assert [(m.role, m.content) for m in history] == [
        ("user", "Where should I go in May?"), ("assistant", "Lisbon is lovely in May.")]


def test_sdk_streams_and_a_growing_conversation_stays_one_session(served, model: ScriptedModel) -> None:
    bot, url = served
    model.enqueue("Hello Ann.")
    model.enqueue("You told me your name is Ann.")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    first = [{"role": "user", "content": "Hi, my name is Ann."}]
    chunks = list(client.chat.completions.create(model="lastmile", messages=first, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello Ann."
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    convo = [*first, {"role": "assistant", "content": text},
             {"role": "user", "content": "What is my name?"}]
    stream = client.chat.completions.create(model="lastmile", messages=convo, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == \
        "You told me your name is Ann."
    sessions = bot.sessions("default")
    assert len(sessions) == 1 and sessions[0].message_count == 4
    # The model saw the earlier turn from lastmile's own history.
    assert "Hi, my name is Ann." in str(model.requests[-1].messages)


def test_a_conversation_begun_elsewhere_is_imported_once(served, model: ScriptedModel) -> None:
    bot, url = served
    model.enqueue("Noted.")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    done = client.chat.completions.create(model="lastmile", messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "I keep bees."}, {"role": "assistant", "content": "Nice."},
        {"role": "user", "content": [{"type": "text", "text": "What do I keep?"}]}])
    session = done.model_extra["lastmile"]["session_id"]
    assert [m.content for m in bot.history(session, user_id="default")] == [
        "I keep bees.", "Nice.", "What do I keep?", "Noted."]


@pytest.mark.parametrize("body, status, fragment", [
    (b"{not json", 400, "Invalid request"),
    (b'{"model": "lastmile"}', 400, "messages"),
    (b'{"model": "lastmile", "messages": []}', 400, "messages"),
    (b'{"model": "lastmile", "messages": [{"role": "wizard", "content": "x"}]}', 400, "messages.0.role"),
    (b'{"model": "lastmile", "messages": [{"role": "assistant", "content": "x"}]}', 400, "last message"),
    (b'{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}', 404, "gpt-9"),
    (b'{"model": "lastmile", "messages": [{"role": "user", "content": "   "}]}', 400, "non-empty"),
])
def test_bad_bodies_get_openai_style_errors(served, body: bytes, status: int, fragment: str) -> None:
    bot, url = served
    response = httpx.post(f"{url}/v1/chat/completions", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"] + str(error["param"])
    assert set(error) == {"message", "type", "param", "code"}
    assert bot.sessions("default") == []  # nothing stored for a refused request


def test_sdk_raises_its_typed_errors(served) -> None:
    _, url = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="too long|limit"):
        client.chat.completions.create(model="lastmile",
                                       messages=[{"role": "user", "content": "x" * 30_000}])
    assert [m.id for m in client.models.list()] == ["lastmile"]


def test_provider_outage_is_a_503_and_the_message_is_kept(served, model: ScriptedModel) -> None:
    from assistant.errors import ProviderUnavailable

    bot, url = served
    model.enqueue(ProviderUnavailable("down"))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="lastmile",
                                       messages=[{"role": "user", "content": "still there?"}])
    (session,) = bot.sessions("default")
    history = bot.history(session.session_id, user_id="default")
    assert history[0].content == "still there?" and history[1].status == "error"


def test_api_keys_separate_users_and_are_required_when_sign_in_is_on(keyed, model) -> None:
    bot, url = keyed
    accounts = Accounts(bot.store.engine)
    ann, bob = accounts.issue_key("ann"), accounts.issue_key("bob")
    model.enqueue("ok ann")
    model.enqueue("ok bob")
    for key, who in ((ann, "ann"), (bob, "bob")):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        client.chat.completions.create(model="lastmile", messages=[
            {"role": "user", "content": f"secret of {who}"}])
    assert [m.content for s in bot.sessions("ann") for m in bot.history(s.session_id, "ann")] == [
        "secret of ann", "ok ann"]
    assert all("ann" not in m.content for s in bot.sessions("bob")
               for m in bot.history(s.session_id, "bob"))
    for bad in ("unused", "lm-forged"):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=bad, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="lastmile", messages=[{"role": "user", "content": "x"}])
    anonymous = httpx.post(f"{url}/v1/chat/completions",
                           json={"model": "lastmile", "messages": [{"role": "user", "content": "x"}]})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    assert bot.sessions("default") == []
    accounts.revoke_keys("ann")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key=ann, max_retries=0).models.list()


def test_passwords_are_hashed_and_checked(settings: Settings) -> None:
    from memory.db import open_engine

    accounts = Accounts(open_engine(settings.resolved_database_url))
    accounts.upsert("rita", password="correct horse", role="reviewer")
    assert accounts.authenticate("rita", "correct horse").role == "reviewer"
    assert accounts.authenticate("rita", "wrong horse!") is None
    assert accounts.authenticate("nobody", "correct horse") is None
    assert accounts.get("rita").allows("user") and not accounts.get("rita").allows("admin")
    with pytest.raises(ValueError, match="8 characters"):
        accounts.upsert("rita", password="short")
    with pytest.raises(ValueError, match="unknown role"):
        accounts.upsert("rita", role="root")
    from sqlalchemy import text

    with accounts._sessions() as db:
        stored = db.execute(text("SELECT password_hash FROM users WHERE id='rita'")).scalar()
    assert stored.startswith("scrypt$") and "correct horse" not in stored
