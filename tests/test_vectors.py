"""Chroma turn index, embedded (PersistentClient) and against a real `chroma run` server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from chromadb.api.shared_system_client import SharedSystemClient

from assistant import Assistant, ScriptedModel, Settings
from assistant.errors import VectorStoreUnavailable
from memory.recall import TurnMemory
from memory.retrieval import HybridRetriever
from memory.store import StoredMessage
from memory.vectors import open_chroma


def _msg(i: int, user: str, session: str, text: str, role: str = "user") -> StoredMessage:
    return StoredMessage(id=i, session_id=session, user_id=user, role=role, content=text,
                         status="ok", created_at=datetime(2026, 5, i % 28 + 1, tzinfo=UTC))


@pytest.fixture(params=["embedded", "server"])
def client(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "embedded":
        return open_chroma(tmp_path / "chroma")
    return open_chroma(tmp_path / "unused", request.getfixturevalue("chroma_server"))


def test_turn_memory_recall_is_scoped_to_user(client, request) -> None:  # type: ignore[no-untyped-def]
    name = f"mem_{request.node.callspec.id}_{id(client)}"
    memory = TurnMemory(HybridRetriever(client, collection=name), k=5)
    memory.add([
        _msg(1, "ann", "s1", "My sister Maria lives in Lisbon"),
        _msg(2, "ann", "s2", "I adopted a cat called Pixel"),
        _msg(3, "ben", "s9", "My sister lives in Lisbon too, her name is Joana"),
        _msg(4, "ann", "s1", "   "),  # blank turns are skipped, not stored
    ])
    recalled = memory.recall("ann", "where does my sister live?", token_budget=300)
    assert recalled.message_ids[0] == 1 and 3 not in recalled.message_ids
    assert "[msg-1 | 2 May 2026" in recalled.text and "User: My sister Maria" in recalled.text
    assert "Joana" not in recalled.text  # never ben's turn
    assert memory.recall("ann", "sister", token_budget=300, exclude=[1]).message_ids[:1] != [1]
    assert memory.recall("nobody", "sister", token_budget=300).text == ""
    memory.add([_msg(1, "ann", "s1", "My sister Maria lives in Lisbon")])  # idempotent
    assert memory.retriever.count("ann") == 2 and memory.retriever.count("ben") == 1


def test_collection_reopens_with_our_embedding_function(tmp_path) -> None:
    TurnMemory(HybridRetriever(open_chroma(tmp_path / "c"), collection="turns")).add(
        [_msg(1, "u", "s", "hello world")])
    SharedSystemClient.clear_system_cache()  # a really new client, as after a restart
    reopened = open_chroma(tmp_path / "c").get_collection("turns")  # no embedding function given
    result = reopened.query(query_texts=["hello"], n_results=1, where={"user_id": "u"})
    assert result["documents"] == [["User: hello world"]]


def test_unreachable_server_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(VectorStoreUnavailable) as info:
        open_chroma(tmp_path, "http://127.0.0.1:9")
    assert "http://127.0.0.1:9" in str(info.value)
    with pytest.raises(VectorStoreUnavailable, match="host:port"):
        open_chroma(tmp_path, "chroma.example:8000")


def turn_index(bot: Assistant):  # type: ignore[no-untyped-def]
    """The turn memory the assistant's index jobs fill (under the facts layer)."""
    return getattr(bot.memory, "turns", bot.memory)


def test_assistant_indexes_turns_in_server_chroma(tmp_path, chroma_server: str) -> None:
    settings = Settings(data_dir=tmp_path / "d", chroma_url=chroma_server)
    with Assistant(settings, model=ScriptedModel(["Sounds fun!"])) as bot:
        bot.chat("I'm learning to play the cello", session_id="music", user_id="zoe")
        bot.flush()
        hits = turn_index(bot).retriever.search("zoe", "musical instrument", k=2)  # type: ignore[union-attr]
        indexed = turn_index(bot).retriever.count("zoe")  # type: ignore[union-attr]
    assert hits[0].item.text == "User: I'm learning to play the cello"
    assert indexed == 2  # the reply too (shown as the hit's neighbour turn, issue 17)
    assert not (tmp_path / "d" / "chroma").exists()  # server mode stores nothing locally


def test_turns_missed_by_the_index_are_caught_up_on_start(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    with Assistant(settings.model_copy(update={"index_turns": False}),
                   model=ScriptedModel(["Rivers carry sediment to the sea."])) as bot:
        bot.chat("question while index was off", session_id="s")
    with Assistant(settings, model=ScriptedModel()) as bot:
        bot.flush()
        assert turn_index(bot).retriever.count("default") == 2  # type: ignore[union-attr]
        assert bot.store.unindexed() == []  # type: ignore[attr-defined]
