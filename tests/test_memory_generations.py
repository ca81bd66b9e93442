"""Per-process memory is only a cache (issue 12): two replicas on one database.

Each "replica" here has its own engine, store, retriever and caches, as two processes
would; they share the database (a SQLite file, or a PostgreSQL schema) and Chroma. What
one writes, the other's warm cache serves at its next search; what one deletes, the
other never serves again — not from its warm cache, not from a cold load of a Chroma
that still holds the vector. Real subprocess replicas are in tests/cluster/.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from memory import generations as generations_module
from memory.db import open_engine
from memory.facts import FactMemory
from memory.facts_extract import Candidate
from memory.facts_recall import FactRecall, LayeredRecall
from memory.generations import MemoryGenerations
from memory.recall import TurnMemory
from memory.retrieval import HybridRetriever, MemoryItem
from memory.store import ConversationStore, StoredMessage
from memory.vectors import open_chroma


@dataclass
class Replica:
    store: ConversationStore
    retriever: HybridRetriever
    turns: TurnMemory
    generations: MemoryGenerations

    def index(self, messages: Sequence[StoredMessage]) -> None:
        """What an ``index`` job does: vectors into Chroma, then ``mark_indexed``."""
        self.turns.add(messages)
        self.store.mark_indexed(m.id for m in messages)

    def say(self, user: str, session: str, *texts: str) -> list[StoredMessage]:
        stored = [self.store.add_message(user, session, "user", t) for t in texts]
        self.index(stored)
        return stored

    def texts(self, user: str, query: str, k: int = 10) -> list[str]:
        """Every item a search shows: hits and the neighbour turns shown with them."""
        return [i.text for h in self.retriever.search(user, query, k=k) for i in (h.item, *h.context)]


@pytest.fixture
def make_replica(database_url: str, tmp_path: Path) -> Iterator:
    collection = f"mem_{uuid.uuid4().hex[:8]}"
    engines = []

    def make(*, cache_mb: float | None = None, chroma_url: str | None = None) -> Replica:
        engine = open_engine(database_url)
        engines.append(engine)
        client = open_chroma(tmp_path / "chroma", chroma_url)
        generations = MemoryGenerations(engine)
        retriever = HybridRetriever(client, collection=collection, generations=generations,
                                    cache_mb=cache_mb)
        return Replica(ConversationStore(engine), retriever, TurnMemory(retriever), generations)

    yield make
    for engine in engines:
        engine.dispose()


HOME = "My sister Ingrid moved to Reykjavik last spring."
CODE = "The locker code at the climbing gym is 4417."


def test_a_turn_written_through_a_is_recalled_by_an_already_warm_b(make_replica) -> None:
    a, b = make_replica(), make_replica()
    a.say("ann", "s1", "I adopted a golden retriever puppy called Biscuit.")
    assert any("Biscuit" in t for t in b.texts("ann", "my dog"))  # B is warm now
    before = b.generations.current("ann")
    a.say("ann", "s2", HOME)
    assert b.generations.current("ann") > before  # the bump is what B reads
    assert any("Reykjavik" in t for t in b.texts("ann", "Where did Ingrid move?"))


def test_without_the_bump_a_warm_b_stays_stale(make_replica, monkeypatch) -> None:
    """The guarantee above rests on the bump: removed, B never sees A's turn."""
    a, b = make_replica(), make_replica()
    a.say("ann", "s1", "I adopted a golden retriever puppy called Biscuit.")
    b.texts("ann", "my dog")
    monkeypatch.setattr("memory.store.bump", lambda *args, **kwargs: 0)
    a.say("ann", "s2", HOME)
    assert not any("Reykjavik" in t for t in b.texts("ann", "Where did Ingrid move?"))


def test_a_deleted_session_never_comes_back_to_a_warm_or_cold_replica(make_replica) -> None:
    a, b = make_replica(), make_replica()
    a.say("ann", "keep", "I adopted a golden retriever puppy called Biscuit.")
    secret = a.say("ann", "gone", CODE)
    assert any("4417" in t for t in b.texts("ann", "locker code"))
    ids = a.store.delete_session("ann", "gone")
    assert ids == [secret[0].id]
    # Only the SQL delete happened (the Chroma delete failed, or has not run yet):
    assert not any("4417" in t for t in b.texts("ann", "locker code"))
    assert not any("4417" in t for t in make_replica().texts("ann", "locker code"))  # cold
    a.turns.forget_messages("ann", ids)  # the Chroma delete runs late
    assert not any("4417" in t for t in a.texts("ann", "locker code"))
    assert any("Biscuit" in t for t in b.texts("ann", "my dog"))  # the rest stays


def test_an_index_write_landing_after_the_delete_does_not_resurrect(make_replica) -> None:
    """An index job in flight while the session is deleted writes its vector to Chroma
    after the delete; ``mark_indexed`` finds no row, so nothing is logged as added."""
    a, b = make_replica(), make_replica()
    a.say("ann", "keep", "I adopted a golden retriever puppy called Biscuit.")
    b.texts("ann", "dog")
    late = a.store.add_message("ann", "gone", "user", CODE)
    a.turns.forget_messages("ann", a.store.delete_session("ann", "gone"))
    a.index([late])  # the in-flight job finishes
    for replica in (a, b, make_replica()):
        assert not any("4417" in t for t in replica.texts("ann", "locker code"))


def test_superseded_messages_leave_every_replicas_recall(make_replica) -> None:
    a, b = make_replica(), make_replica()
    first = a.say("ann", "s", CODE)
    assert any("4417" in t for t in b.texts("ann", "locker code"))
    a.store.set_status("ann", "s", [first[0].id], "superseded")
    assert not any("4417" in t for t in b.texts("ann", "locker code"))


def test_a_fact_forgotten_through_a_never_reaches_bs_prompt(database_url, tmp_path, make_replica) -> None:
    a, b = make_replica(), make_replica()
    engine_a, engine_b = a.store.engine, b.store.engine
    chroma = open_chroma(tmp_path / "chroma")
    facts_a, facts_b = FactMemory(engine_a, chroma), FactMemory(engine_b, chroma)
    said = a.say("ann", "s", "I live in Porto.")[0]
    facts_a.apply("ann", [Candidate(key="home", value="Porto")], source=said)
    recall_b = LayeredRecall(FactRecall(facts_b), b.turns)
    assert "Porto" in recall_b.recall("ann", "Where do I live?", token_budget=400).text
    generation = b.generations.current("ann")
    (fact,) = facts_a.facts("ann")
    facts_a.forget_ids("ann", [fact.id], "the user asked")
    assert b.generations.current("ann") > generation  # facts writes bump too
    block = recall_b.recall("ann", "Where do I live?", token_budget=400).text
    assert "Porto" not in block  # neither the fact nor the turn it came from


@pytest.mark.slow
def test_lru_users_are_evicted_under_the_megabyte_bound(make_replica) -> None:
    writer = make_replica()
    for user in ("u1", "u2", "u3"):
        writer.say(user, "s", *(f"{user} note {i}: the {i}th thing about kayaks" for i in range(12)))
    probe = make_replica()  # unbounded: what each user costs
    sizes = {u: (probe.texts(u, "kayaks"), probe.retriever.ledger.get(u).nbytes)[1]
             for u in ("u1", "u2", "u3")}
    assert min(sizes.values()) > 12 * (384 * 4 + 30)  # vectors, texts and overhead are counted
    reader = make_replica(cache_mb=2.5 * max(sizes.values()) / 1e6)  # room for two, not three
    for user in ("u1", "u2", "u3"):
        assert reader.texts(user, "kayaks")
    ledger = reader.retriever.ledger
    assert ledger.users == ["u2", "u3"] and ledger.evictions == 1
    assert ledger.total_bytes <= ledger.max_bytes
    assert "u1" not in reader.retriever._items and reader.retriever.lexical.count("u1") == 0
    writer.say("u1", "s", "u1 bought a red canoe")  # written while u1 was evicted
    assert any("canoe" in t for t in reader.texts("u1", "canoe"))  # reloaded, current
    assert ledger.users == ["u3", "u1"]


@pytest.mark.slow
def test_a_cache_behind_a_compacted_log_reloads(make_replica, monkeypatch) -> None:
    monkeypatch.setattr(generations_module, "COMPACT_EVERY", 2)
    a, b = make_replica(), make_replica()
    a.say("ann", "s", "Biscuit is my puppy.")
    b.texts("ann", "puppy")  # warm at generation 1
    for i in range(5):
        a.say("ann", "s", f"Fact number {i} about sourdough.")
    delta = b.generations.since("ann", 1)
    assert not delta.complete  # adds at or below the floor are gone
    assert len([t for t in b.texts("ann", "sourdough") if "sourdough" in t]) == 5
    assert b.retriever.count("ann") == 6


def test_generations_are_per_user(make_replica) -> None:
    a, b = make_replica(), make_replica()
    a.say("ann", "s", "Ann likes jazz.")
    b.texts("bob", "jazz")
    assert b.generations.current("bob") == 0 and b.generations.current("ann") == 1
    assert b.texts("bob", "jazz") == []


def test_server_chroma_replicas_follow_each_other(make_replica, chroma_server) -> None:
    a, b = make_replica(chroma_url=chroma_server), make_replica(chroma_url=chroma_server)
    a.say("ann", "keep", "I adopted a golden retriever puppy called Biscuit.")
    assert b.texts("ann", "dog")
    a.say("ann", "gone", CODE)
    assert any("4417" in t for t in b.texts("ann", "locker code"))
    a.turns.forget_messages("ann", a.store.delete_session("ann", "gone"))
    assert not any("4417" in t for t in b.texts("ann", "locker code"))


def test_a_writer_replica_sees_its_own_writes_through_the_log(make_replica) -> None:
    a = make_replica()
    a.say("ann", "s", "Biscuit is my puppy.")
    assert a.texts("ann", "puppy")
    a.say("ann", "s", HOME)
    assert any("Reykjavik" in t for t in a.texts("ann", "Ingrid"))
    assert a.retriever.count("ann") == 2


def test_items_without_generations_still_update_in_process(tmp_path) -> None:
    retriever = HybridRetriever(open_chroma(tmp_path / "c"), collection="solo")
    retriever.add("ann", [MemoryItem("x1", "Biscuit is my puppy.")])
    assert [h.item.source_id for h in retriever.search("ann", "puppy")] == ["x1"]
    retriever.remove("ann", ["x1"])
    assert retriever.search("ann", "puppy") == []
