"""The turn loop with the scripted model, on SQLite and PostgreSQL, real Chroma."""

from __future__ import annotations

import asyncio

import pytest

from assistant import Assistant, InputRejected, ScriptedModel, ScriptedReply, Settings
from assistant.errors import ProviderUnavailable, SessionNotFound


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def bot(settings: Settings, model: ScriptedModel):  # type: ignore[no-untyped-def]
    with Assistant(settings, model=model) as assistant:
        yield assistant


def test_chat_stores_both_sides_and_reports_usage(bot: Assistant, model: ScriptedModel) -> None:
    model.enqueue("Paris is the capital of France.")
    reply = bot.chat("What is the capital of France?", session_id="geo", user_id="ann")
    assert reply.ok and reply.text == "Paris is the capital of France."
    assert reply.provider == "scripted" and reply.session_id == "geo"
    assert reply.usage.completion_tokens == 6 and reply.usage.prompt_tokens > 0
    history = bot.history("geo", user_id="ann")
    assert [(m.role, m.content) for m in history] == [
        ("user", "What is the capital of France?"), ("assistant", "Paris is the capital of France.")]
    assert history[1].id == reply.message_id and history[0].id == reply.user_message_id
    assert history[1].provider == "scripted" and history[1].latency_ms is not None


def test_user_message_is_stored_before_the_model_is_called(settings: Settings) -> None:
    seen: list[list[str]] = []

    def respond(messages):  # type: ignore[no-untyped-def]
        seen.append([m.content for m in bot.history("s", user_id="u")])
        return "ok"

    with Assistant(settings, model=ScriptedModel(fn=respond)) as bot:
        bot.chat("remember me", session_id="s", user_id="u")
    assert seen == [["remember me"]]


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\u200b\u00a0"])
def test_empty_input_is_rejected_kindly_and_nothing_is_stored(bot: Assistant, model: ScriptedModel,
                                                              text: str) -> None:
    with pytest.raises(InputRejected) as info:
        bot.chat(text, session_id="s")
    assert "empty" in info.value.user_message.lower()
    assert model.requests == []
    assert bot.sessions() == []


def test_oversized_input_is_rejected(settings: Settings, model: ScriptedModel) -> None:
    with Assistant(settings.model_copy(update={"max_message_chars": 10}), model=model) as bot:
        with pytest.raises(InputRejected) as info:
            bot.chat("x" * 11, session_id="s")
    assert "too long" in info.value.user_message
    assert model.requests == []


def test_failure_mid_stream_keeps_user_message_and_marks_partial_reply(bot: Assistant,
                                                                       model: ScriptedModel) -> None:
    model.enqueue(ScriptedReply("one two three four", fail_after=2))
    stream = bot.stream("tell me", session_id="s")
    chunks = list(stream)
    reply = stream.reply
    assert chunks == ["one ", "two "]
    assert reply is not None and reply.status == "incomplete" and reply.text == "one two "
    assert reply.error and "cut off" in reply.error
    history = bot.history("s")
    assert [(m.role, m.status) for m in history] == [("user", "ok"), ("assistant", "incomplete")]
    # The broken reply is never fed back to the model on the next turn, nor its user
    # message as if unanswered (issue 12: the turn is marked interrupted).
    assert bot.sessions.history("s")[0].interrupted
    model.enqueue("fine now")
    assert bot.chat("again", session_id="s").ok
    sent = [m.content for m in model.requests[-1].messages]
    assert "one two " not in sent and "tell me" not in sent and sent[-1] == "again"


def test_provider_down_gives_clear_error_and_history_stays_consistent(bot: Assistant,
                                                                      model: ScriptedModel) -> None:
    model.enqueue(ProviderUnavailable("connection refused", provider="scripted"))
    reply = bot.chat("hello?", session_id="s")
    assert reply.status == "error" and reply.text == ""
    assert "saved" in (reply.error or "")
    assert [m.role for m in bot.history("s")] == ["user", "assistant"]
    assert bot.history("s")[0].content == "hello?"
    calls = bot.store.provider_calls("default")
    assert calls[-1]["status"] == "error" and "connection refused" in calls[-1]["error"]


def test_context_keeps_newest_turns_within_budget(settings: Settings) -> None:
    model = ScriptedModel(fn=lambda messages: "ok")
    tight = settings.model_copy(update={"context_budget_tokens": 64, "system_prompt": "Be brief."})
    with Assistant(tight, model=model) as bot:
        for i in range(30):
            bot.chat(f"message number {i} with a few extra words", session_id="s")
        sent = model.requests[-1].messages
        assert sent[0].content == "Be brief."
        assert sent[-1].content == "message number 29 with a few extra words"
        assert model.count_tokens(sent) <= 64
        assert len(sent) < 61  # older turns were dropped
        assert type(sent[1]).__name__ == "HumanMessage"  # window opens on a user turn
        reply = bot.chat("last", session_id="s")
    assert reply.context is not None and reply.context.dropped_messages > 0
    stored = bot.history("s")[-1].context  # the split is kept with the reply, per turn
    assert stored is not None and stored["budget"] == reply.context.budget
    assert stored["reply_reserve"] == tight.max_reply_tokens
    assert stored["history_tokens"] == reply.context.history_tokens
    assert stored["message_ids"] == reply.context.message_ids and stored["total_tokens"] <= 64


def test_pending_turn_is_kept_even_over_budget(settings: Settings) -> None:
    model = ScriptedModel(fn=lambda messages: "ok")
    with Assistant(settings.model_copy(update={"context_budget_tokens": 64}), model=model) as bot:
        long_question = "word " * 200 + "final question?"
        bot.chat(long_question, session_id="s")
    assert model.requests[0].messages[-1].content == long_question.strip()


def test_users_never_see_each_others_sessions(bot: Assistant, model: ScriptedModel) -> None:
    model.enqueue("noted", "noted")
    bot.chat("my password is swordfish", session_id="same", user_id="alice")
    bot.chat("hello", session_id="same", user_id="bob")
    assert "swordfish" not in str([m.content for m in bot.history("same", user_id="bob")])
    assert "swordfish" not in str([m.content for m in model.requests[1].messages])
    with pytest.raises(SessionNotFound):
        bot.history("same", user_id="mallory")


def test_history_survives_restart(settings: Settings) -> None:
    with Assistant(settings, model=ScriptedModel(["first answer"])) as bot:
        bot.chat("first question", session_id="keep")
    with Assistant(settings, model=ScriptedModel(["second answer"])) as again:
        assert [m.content for m in again.history("keep")] == ["first question", "first answer"]
        again.chat("second question", session_id="keep")
        assert len(again.history("keep")) == 4
        assert [s.session_id for s in again.sessions()] == ["keep"]


def test_earlier_turns_are_recalled_across_sessions_per_user(bot: Assistant, model: ScriptedModel) -> None:
    model.enqueue("Lovely, Kyoto in spring is beautiful.", "Noted.", "Have fun!", "Sure.")
    bot.chat("I am travelling to Kyoto in April", session_id="s", user_id="ann")
    bot.chat("I am travelling to the Alps in April", session_id="t", user_id="ben")
    bot.flush()
    reply = bot.chat("Which city am I travelling to?", session_id="new", user_id="ann")
    system = model.requests[-1].messages[0].content
    assert "Kyoto in April" in system and "Alps" not in system
    assert reply.context is not None and reply.context.memory_tokens > 0
    assert reply.context.memory_ids and reply.context.memory_tokens <= bot.settings.memory_budget_tokens
    # What is already in the recent window is not repeated as a memory.
    bot.chat("And when?", session_id="s", user_id="ann")
    same_session = model.requests[-1]
    assert [m.content for m in same_session.messages].count("I am travelling to Kyoto in April") == 1


async def test_async_chat_and_stream(bot: Assistant, model: ScriptedModel) -> None:
    model.enqueue("async reply one", "streamed reply two")
    reply = await bot.achat("hi", session_id="a")
    assert reply.text == "async reply one"
    stream = await bot.astream("more", session_id="a")
    chunks = [chunk async for chunk in stream]
    assert "".join(chunks) == "streamed reply two" and len(chunks) == 3
    assert stream.reply is not None and stream.reply.ok
    results = await asyncio.gather(*(bot.achat(f"q{i}", session_id=f"p{i}") for i in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, Exception) or r.status == "error" for r in results)  # queue empty
    assert len(bot.history("p0")) == 2


def test_default_assistant_reads_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("LASTMILE_DATA_DIR", str(tmp_path / "envdata"))
    monkeypatch.setenv("LASTMILE_PROVIDERS", "scripted")
    with Assistant() as bot:
        reply = bot.chat("ping", session_id="e")
    assert reply.text == "(scripted) you said: ping"
    assert (tmp_path / "envdata" / "lastmile.db").exists()
    assert (tmp_path / "envdata" / "chroma").is_dir()


def test_missing_model_keeps_the_message_and_says_how_to_fix(settings: Settings, tmp_path) -> None:
    broken = settings.model_copy(update={"local_model_path": tmp_path / "gone.gguf"})
    with Assistant(broken) as bot:
        reply = bot.chat("is anyone there?", session_id="s")
    assert reply.status == "error" and "lastmile doctor" in (reply.error or "")
    history = bot.history("s")
    assert [(m.role, m.status) for m in history] == [("user", "ok"), ("assistant", "error")]
    assert "gone.gguf" in (history[1].error or "")


def test_reply_cut_at_the_token_limit_is_flagged(settings: Settings) -> None:
    model = ScriptedModel(["one two three four five six"])
    with Assistant(settings.model_copy(update={"max_reply_tokens": 3}), model=model) as bot:
        reply = bot.chat("count", session_id="s")
    assert reply.ok and reply.text == "one two three " and reply.truncated
    assert bot.history("s")[-1].finish_reason == "length"


class _RestartingModel(ScriptedModel):
    """Streams a partial reply, then signals a mid-stream fallback, then the real one."""

    def request(self, request):  # type: ignore[no-untyped-def]
        from assistant.providers import ModelChunk

        self.requests.append(request)
        yield ModelChunk(text="half an ", provider="first")
        yield ModelChunk(restart=True, discarded="half an ", provider="second",
                         reason="StreamInterrupted: boom")
        yield ModelChunk(text="whole answer", provider="second")


def test_restart_chunk_discards_partial_text(bot: Assistant, settings: Settings) -> None:
    from assistant.reply import Restart

    with Assistant(settings, model=_RestartingModel()) as restarting:
        stream = restarting.stream("q", session_id="r")
        chunks = list(stream)
    assert any(isinstance(c, Restart) and c.discarded == "half an " for c in chunks)
    assert stream.reply is not None and stream.reply.text == "whole answer"
    assert stream.reply.provider == "second"
    assert restarting.history("r")[-1].content == "whole answer"
