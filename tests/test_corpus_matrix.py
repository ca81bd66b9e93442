"""Corpus dense search from in-memory per-scope matrices (issue 14): the same hits as
Chroma's filtered query, and never stale — right after an ingest (this process's or
another's), after a deletion, and while an ingest's vectors are still missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from memory.corpus import Corpus, Hit, owner_for
from memory.db import open_engine
from memory.vectors import open_chroma

TOPICS = {
    "ferry": "The ferry to the island leaves at 7:40 and costs 12 euros per adult.",
    "boiler": "Boiler servicing is due every twelve months; book the engineer by phone.",
    "library": "The library opens at nine on weekdays and lends up to fifteen books.",
    "parking": "A resident parking permit costs 80 euros a year and covers one car.",
    "tram": "Tram fares rose to 2.10 euros in May; a day ticket costs seven euros.",
}


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.txt"
    path.write_text(f"{name.title()} notice\n\n{text}\n", encoding="utf-8")
    return path


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_engine(database_url)
    yield engine
    engine.dispose()


def _corpus(engine: Engine, chroma: Path) -> Corpus:
    return Corpus(engine, open_chroma(chroma), chunk_chars=300, chunk_overlap=40)


def _through_chroma(corpus: Corpus, monkeypatch: pytest.MonkeyPatch, *args: Any,
                    **kwargs: Any) -> list[Hit]:
    with monkeypatch.context() as m:
        m.setattr(corpus, "_dense", lambda *a: None)
        return corpus.search(*args, **kwargs)


def test_matrix_search_returns_what_the_chroma_query_returns(engine: Engine, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus(engine, tmp_path / "chroma")
    corpus.ingest([_write(tmp_path / "own", n, t) for n, t in TOPICS.items()],
                  collection="notices", user_id="ann")
    corpus.ingest([_write(tmp_path / "shared", "shared-ferry", TOPICS["ferry"] + " Shared copy.")],
                  collection="everyone")
    for query in ["when does the ferry leave?", "how much is a parking permit", "tram day ticket",
                  "boiler engineer", "books to borrow", "something unrelated about cats"]:
        fast = corpus.search("ann", query)
        assert owner_for("ann") in corpus._matrices  # the matrix path answered
        slow = _through_chroma(corpus, monkeypatch, "ann", query)
        assert [(h.chunk_id, h.title) for h in fast] == [(h.chunk_id, h.title) for h in slow]
        assert [h.similarity for h in fast] == pytest.approx([h.similarity for h in slow], abs=1e-4)
    assert any(h.title == "ferry" for h in corpus.search("ann", "when does the ferry leave?"))


def test_a_document_is_found_right_after_it_is_ingested(engine: Engine, tmp_path: Path) -> None:
    corpus = _corpus(engine, tmp_path / "chroma")
    corpus.ingest([_write(tmp_path / "a", "ferry", TOPICS["ferry"])], collection="c", user_id="bo")
    assert corpus.search("bo", "ferry timetable")  # caches the scope's matrix
    corpus.ingest([_write(tmp_path / "b", "tram", TOPICS["tram"])], collection="c", user_id="bo")
    assert corpus.search("bo", "tram fares and day tickets")[0].title == "tram"
    # ...and through another process's corpus (its own memory), sharing the stores
    other = _corpus(engine, tmp_path / "chroma")
    assert other.search("bo", "tram fares and day tickets")
    other.ingest([_write(tmp_path / "c", "library", TOPICS["library"])], collection="c", user_id="bo")
    assert corpus.search("bo", "library opening hours books")[0].title == "library"


def test_a_deleted_source_is_never_returned(engine: Engine, tmp_path: Path) -> None:
    corpus = _corpus(engine, tmp_path / "chroma")
    corpus.ingest([_write(tmp_path / "a", n, t) for n, t in TOPICS.items()], collection="c",
                  user_id="cy")
    assert any(h.title == "parking" for h in corpus.search("cy", "parking permit price"))
    source = next(s for s in corpus.sources("cy") if s.title == "parking")
    assert corpus.delete_source("cy", source.id)
    assert all(h.title != "parking" for h in corpus.search("cy", "parking permit price"))


def test_missing_vectors_fall_back_to_chroma_and_are_not_kept(engine: Engine, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows committed before their vectors (an ingest in flight): no matrix is kept."""
    corpus = _corpus(engine, tmp_path / "chroma")
    corpus.ingest([_write(tmp_path / "a", n, t) for n, t in TOPICS.items()], collection="c",
                  user_id="di")
    got = corpus.vectors.get(where={"owner": owner_for("di")})
    corpus.vectors.delete(ids=[got["ids"][0]])
    corpus._matrices.clear()
    hits = corpus.search("di", "ferry and tram prices")
    assert owner_for("di") not in corpus._matrices
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in
                                          _through_chroma(corpus, monkeypatch, "di", "ferry and tram prices")]
    assert all(f"chunk-{h.chunk_id}" != got["ids"][0] for h in hits)
