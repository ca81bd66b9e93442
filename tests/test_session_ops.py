"""Delete, regenerate, edit-and-resend and feedback, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from assistant import Assistant, InputRejected, ScriptedModel, Settings
from assistant.errors import SessionNotFound


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def bot(settings: Settings, model: ScriptedModel):  # type: ignore[no-untyped-def]
    with Assistant(settings.model_copy(update={"index_turns": False}), model=model) as assistant:
        yield assistant


def _prompt(model: ScriptedModel) -> str:
    return "\n".join(str(m.content) for m in model.requests[-1].messages)


def test_regenerate_supersedes_the_old_reply_and_hides_it_from_the_model(bot, model) -> None:
    model.enqueue("First answer.", "Second answer.", "Third.")
    bot.chat("Tell me a fact.", session_id="s", user_id="ann")
    stream = bot.regenerate("s", user_id="ann")
    assert stream.text() == "Second answer." and stream.reply.ok
    assert "First answer." not in _prompt(model) and "Tell me a fact." in _prompt(model)
    rows = [(m.role, m.content, m.status) for m in bot.history("s", user_id="ann")]
    assert rows == [("user", "Tell me a fact.", "ok"), ("assistant", "First answer.", "superseded"),
                    ("assistant", "Second answer.", "ok")]
    bot.chat("And another?", session_id="s", user_id="ann")
    assert "First answer." not in _prompt(model) and "Second answer." in _prompt(model)


def test_edit_and_resend_replaces_the_question(bot, model) -> None:
    model.enqueue("Hello Bo.", "Hello Al.")
    bot.chat("Hi, I am Bo.", session_id="s", user_id="ann")
    reply = bot.edit_and_resend("Hi, I am Al.", session_id="s", user_id="ann").text()
    assert reply == "Hello Al."
    prompt = _prompt(model)
    assert "Hi, I am Al." in prompt and "Bo" not in prompt
    live = [m.content for m in bot.history("s", user_id="ann") if m.status == "ok"]
    assert live == ["Hi, I am Al.", "Hello Al."]


def test_a_rejected_edit_changes_nothing(bot, model) -> None:
    model.enqueue("Hello Bo.")
    bot.chat("Hi, I am Bo.", session_id="s", user_id="ann")
    before = bot.history("s", user_id="ann")
    with pytest.raises(InputRejected):
        bot.edit_and_resend("   ", session_id="s", user_id="ann")
    assert bot.history("s", user_id="ann") == before


def test_redo_on_an_empty_or_foreign_session_is_a_clear_error(bot, model) -> None:
    model.enqueue("Hi.")
    bot.chat("Hello", session_id="mine", user_id="ann")
    with pytest.raises(SessionNotFound):
        bot.regenerate("mine", user_id="bob")
    bot.new_session("bob")
    with pytest.raises(SessionNotFound):
        bot.regenerate(bot.sessions("bob")[0].session_id, user_id="bob")


def test_delete_session_is_per_user_and_total(bot, model) -> None:
    model.enqueue("a", "b")
    bot.chat("keep me", session_id="keep", user_id="ann")
    reply = bot.chat("drop me", session_id="drop", user_id="ann")
    bot.feedback(reply.message_id, 1, user_id="ann")
    with pytest.raises(SessionNotFound):
        bot.delete_session("drop", user_id="bob")
    assert bot.delete_session("drop", user_id="ann") == 2
    assert [s.session_id for s in bot.sessions("ann")] == ["keep"]
    with pytest.raises(SessionNotFound):
        bot.history("drop", user_id="ann")
    with pytest.raises(SessionNotFound):
        bot.delete_session("drop", user_id="ann")


def test_feedback_is_stored_per_user_and_validated(bot, model) -> None:
    model.enqueue("An answer.")
    reply = bot.chat("Question?", session_id="s", user_id="ann")
    bot.feedback(reply.message_id, -1, user_id="ann", note="too vague")
    assert bot.store.feedback("ann", "s") == {reply.message_id: -1}
    bot.feedback(reply.message_id, 1, user_id="ann")
    assert bot.store.feedback("ann", "s") == {reply.message_id: 1}
    bot.feedback(reply.message_id, 0, user_id="ann")
    assert bot.store.feedback("ann", "s") == {}
    with pytest.raises(SessionNotFound):
        bot.feedback(reply.message_id, 1, user_id="bob")
    with pytest.raises(SessionNotFound):
        bot.feedback(reply.user_message_id, 1, user_id="ann")  # only replies take feedback
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        bot.feedback(reply.message_id, 5, user_id="ann")


def test_a_deleted_session_leaves_memory_too(settings: Settings) -> None:
    model = ScriptedModel(fn=lambda messages: "Noted.")
    with Assistant(settings, model=model) as bot:  # recall and facts on
        bot.chat("My locker code is 4417 and I keep bees.", session_id="gone", user_id="ann")
        bot.chat("I play the cello on Sundays.", session_id="kept", user_id="ann")
        bot.flush()
        bot.chat("What do you know about my hobbies and codes?", session_id="probe", user_id="ann")
        before = _prompt(model)
        assert "4417" in before and "cello" in before
        bot.delete_session("gone", user_id="ann")
        bot.chat("What do you know about my hobbies and codes?", session_id="probe2", user_id="ann")
        after = _prompt(model)
    assert "4417" not in after and "bees" not in after
    assert "cello" in after  # the other session's memories stay
