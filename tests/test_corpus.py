"""Corpus ingestion and retrieval on real SQLite/PostgreSQL, real Chroma and real MiniLM."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from assistant.errors import DocumentRejected
from memory.corpus import Corpus, render_sources
from memory.db import open_engine
from memory.ingest import chunk_document
from memory.loaders import LoadedDoc, load
from memory.models import Chunk, Source
from memory.vectors import open_chroma


def make_pdf(path: Path, pages: list[str], *, password: str | None = None) -> Path:
    """A real PDF with one line of Helvetica text per page (pypdf writes it)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for text in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 11 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password, algorithm="RC4-128")
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


@pytest.fixture
def corpus(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_engine(database_url)
    yield Corpus(engine, open_chroma(tmp_path / "chroma"), chunk_chars=300, chunk_overlap=40)
    engine.dispose()


@pytest.fixture
def sqlite_corpus(tmp_path: Path):  # type: ignore[no-untyped-def]
    """For tests whose subject is not the database (file formats, budgets)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'c.db'}")
    yield Corpus(engine, open_chroma(tmp_path / "chroma"), chunk_chars=300, chunk_overlap=40)
    engine.dispose()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def chunks_of(corpus: Corpus, path: Path) -> list[Chunk]:
    with corpus._sessions() as db:
        return list(db.scalars(select(Chunk).join(Source).where(Source.path == str(path.resolve()))
                               .order_by(Chunk.seq)))


def test_ingests_markdown_html_text_and_pdf_with_metadata(corpus: Corpus, tmp_path: Path) -> None:
    docs = tmp_path / "kb"
    md = write(docs / "guide.md", "# Setup Guide\n\nInstall the walrus package with pip. "
               "Then run walrus serve to start.\n\n## Tuning\n\n" + "The flux capacitor needs 1.21 "
               "gigawatts of power. " * 12)
    html = write(docs / "sub" / "page.html", "<html><head><title>Kettle Manual</title>"
                 "<script>var secret = 'nope';</script></head><body><h1>Kettle</h1>"
                 "<p>The kettle boils water in 90 seconds.</p><style>p{}</style></body></html>")
    txt = write(docs / "notes.txt", "Plain notes: the office parrot is called Kiwi.")
    pdf = make_pdf(docs / "report.pdf", ["Quarterly revenue rose to 4 million euros.",
                                         "Page two talks about the lighthouse budget."])
    write(docs / ".hidden" / "skip.md", "# hidden\nshould not be ingested")
    report = corpus.ingest([docs], collection="kb", user_id="alice")
    assert report.count("added") == 4 and not report.problems, report.summary()

    with corpus._sessions() as db:
        sources = {Path(s.path).name: s for s in db.scalars(select(Source))}
    assert set(sources) == {"guide.md", "page.html", "notes.txt", "report.pdf"}
    assert sources["guide.md"].title == "Setup Guide" and sources["guide.md"].kind == "markdown"
    assert sources["page.html"].title == "Kettle Manual"
    assert sources["report.pdf"].pages == 2 and sources["report.pdf"].owner == "user:alice"

    html_text = " ".join(c.text for c in chunks_of(corpus, html))
    assert "boils water in 90 seconds" in html_text and "secret" not in html_text and "p{}" not in html_text
    pdf_chunks = chunks_of(corpus, pdf)
    assert [(c.page, "lighthouse" in c.text) for c in pdf_chunks] == [(1, False), (2, True)]
    # Offsets point into the loaded text: slicing it gives the chunk back.
    md_chunks = chunks_of(corpus, md)
    assert len(md_chunks) > 1
    loaded = load(md, md.read_bytes())
    for c in md_chunks:
        assert loaded.text[c.char_start:c.char_end] == c.text
    assert chunks_of(corpus, txt)[0].text == txt.read_text().strip()

    hits = corpus.search("alice", "how long does the kettle take to boil water?")
    assert hits and hits[0].title == "Kettle Manual"
    pdf_hit = corpus.search("alice", "lighthouse budget")[0]
    assert pdf_hit.page == 2 and pdf_hit.path.endswith("report.pdf")


def test_bad_files_are_skipped_with_a_reason_and_the_rest_ingested(sqlite_corpus: Corpus, tmp_path: Path) -> None:
    corpus = sqlite_corpus
    docs = tmp_path / "mixed"
    good = write(docs / "good.md", "# Good\n\nThe harbour opens at seven.")
    make_pdf(docs / "locked.pdf", ["top secret numbers"], password="hunter2")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not really a pdf \x00\x01")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "blob.txt").write_bytes(bytes(range(256)) * 8)
    big = write(docs / "big.txt", "x" * 12_000)
    small = Corpus(corpus.engine, open_chroma(tmp_path / "chroma"), max_file_bytes=9_000)
    report = small.ingest([docs], collection="mixed")
    lines = {Path(f.path).name: (f.status, f.detail) for f in report.files}
    assert lines["good.md"][0] == "added"
    assert lines["locked.pdf"] == ("skipped", f"{docs.resolve() / 'locked.pdf'}: encrypted PDF (needs a password)")
    assert lines["broken.pdf"][0] == "skipped" and "unreadable PDF" in lines["broken.pdf"][1]
    assert lines["empty.txt"][0] == "skipped" and "empty file" in lines["empty.txt"][1]
    assert lines["blob.txt"][0] == "skipped" and "binary file" in lines["blob.txt"][1]
    assert lines["big.txt"][0] == "rejected" and "12,000 bytes exceeds the 0.009 MB limit" in lines["big.txt"][1]
    assert "LASTMILE_INGEST_MAX_FILE_MB" in lines["big.txt"][1]
    summary = report.summary()
    assert "1 added" in summary and "4 skipped" in summary and "1 rejected" in summary
    assert str(big.resolve()) in summary
    assert [h.path for h in small.search("default", "when does the harbour open?", k=5)] == [
        str(good.resolve())]
    with pytest.raises(DocumentRejected, match="empty file"):
        load(docs / "empty.txt", b"  \n")


def test_reingest_is_idempotent_updates_changed_and_removes_deleted(corpus: Corpus, tmp_path: Path) -> None:
    docs = tmp_path / "wiki"
    a = write(docs / "a.md", "# Alpha\n\nThe alpha reactor runs at 40 degrees.")
    b = write(docs / "b.md", "# Beta\n\nThe beta pump moves 300 litres per hour.")
    c = write(docs / "c.txt", "Gamma notes: the gamma valve is blue.")
    assert corpus.ingest([docs], collection="wiki").count("added") == 3
    before = {p.name: [x.id for x in chunks_of(corpus, p)] for p in (a, b, c)}
    again = corpus.ingest([docs], collection="wiki")
    assert again.count("unchanged") == 3 and again.count("added") == 0
    assert {p.name: [x.id for x in chunks_of(corpus, p)] for p in (a, b, c)} == before

    write(b, "# Beta\n\nThe beta pump was upgraded and now moves 450 litres per hour.")
    c.unlink()
    third = corpus.ingest([docs], collection="wiki")
    status = {Path(f.path).name: f.status for f in third.files}
    assert status == {"a.md": "unchanged", "b.md": "updated", "c.txt": "removed"}
    new_b = chunks_of(corpus, b)
    assert "450 litres" in new_b[0].text and not {x.id for x in new_b} & set(before["b.md"])
    assert chunks_of(corpus, c) == []
    stale = [f"chunk-{i}" for i in before["b.md"] + before["c.txt"]]
    assert corpus.vectors.get(ids=stale)["ids"] == []  # old vectors are gone from Chroma too
    texts = [h.text for h in corpus.search("default", "gamma valve colour", k=5)]
    assert not any("gamma valve" in t for t in texts)
    assert "450" in corpus.search("default", "how many litres does the beta pump move?")[0].text
    # A named file that no longer exists is removed too (and reported once).
    gone = corpus.ingest([a, docs / "nothing.md"], collection="wiki")
    assert {Path(f.path).name: f.status for f in gone.files} == {"a.md": "unchanged",
                                                                 "nothing.md": "missing"}


def test_users_never_see_each_others_documents(corpus: Corpus, tmp_path: Path) -> None:
    write(tmp_path / "alice" / "diary.md", "# Diary\n\nMy locker combination is 4417 and it is "
          "behind the gym.")
    write(tmp_path / "bob" / "recipes.md", "# Recipes\n\nBob's pancakes need three eggs.")
    write(tmp_path / "shared" / "handbook.md", "# Handbook\n\nThe gym opens at six every morning.")
    corpus.ingest([tmp_path / "alice"], collection="private", user_id="alice")
    corpus.ingest([tmp_path / "bob"], collection="private", user_id="bob")
    corpus.ingest([tmp_path / "shared"], collection="handbook")
    question = "what is the locker combination behind the gym?"
    alice = [h.title for h in corpus.search("alice", question, k=10)]
    bob = [h.title for h in corpus.search("bob", question, k=10)]
    assert "Diary" in alice and "Diary" not in bob and "Handbook" in bob
    assert "Recipes" not in alice
    grounding = corpus.retrieve("bob", "locker combination 4417", token_budget=2000,
                                count_tokens=lambda t: len(t) // 4)
    assert "4417" not in grounding.text and all(s.title != "Diary" for s in grounding.sources)
    assert corpus.search("carol", "pancakes eggs", k=10) == []  # a stranger: shared only
    assert corpus.collections("alice") == {"private": 1} and corpus.collections(None) == {"handbook": 1}


def test_sources_are_listed_per_user_and_only_the_owner_deletes(corpus: Corpus, tmp_path: Path) -> None:
    write(tmp_path / "alice" / "diary.md", "# Diary\n\nMy locker combination is 4417.")
    write(tmp_path / "shared" / "handbook.md", "# Handbook\n\nThe gym opens at six every morning.")
    corpus.ingest([tmp_path / "alice"], collection="uploads", user_id="alice")
    corpus.ingest([tmp_path / "shared"], collection="handbook")
    listed = corpus.sources("alice")
    assert [(s.title, s.shared, s.collection) for s in listed] == [
        ("Diary", False, "uploads"), ("Handbook", True, "handbook")]
    assert [s.title for s in corpus.sources("bob")] == ["Handbook"]
    diary, handbook = listed
    assert not corpus.delete_source("bob", diary.id)  # not his
    assert not corpus.delete_source("alice", handbook.id)  # shared: not hers to delete
    assert [h.title for h in corpus.search("alice", "locker combination", k=5)][:1] == ["Diary"]
    assert corpus.delete_source("alice", diary.id)
    assert "Diary" not in [h.title for h in corpus.search("alice", "locker combination", k=5)]
    assert [s.title for s in corpus.sources("alice")] == ["Handbook"]
    assert not corpus.delete_source("alice", diary.id)  # already gone


def test_retrieve_numbers_sources_within_the_budget(sqlite_corpus: Corpus, tmp_path: Path) -> None:
    corpus = sqlite_corpus
    assert corpus.search("u", "volcano") == []  # empty corpus: nothing, and no error
    for n, topic in enumerate(["volcano eruptions in Iceland", "volcano monitoring with seismometers",
                               "volcano ash and aviation"]):
        write(tmp_path / "v" / f"v{n}.md", f"# Volcano {n}\n\nThis page covers {topic}. " * 4)
    corpus.ingest([tmp_path / "v"], collection="v")

    def count(text: str) -> int:
        return len(text.split())

    roomy = corpus.retrieve("u", "volcano", token_budget=1000, count_tokens=count)
    assert [s.id for s in roomy.sources] == ["1", "2", "3"]
    assert roomy.text == render_sources(roomy.sources) and "[2] Volcano" in roomy.text
    assert "cite" in roomy.text.lower()
    tight = corpus.retrieve("u", "volcano", token_budget=count(render_sources(roomy.sources[:1])) + 5,
                            count_tokens=count)
    assert len(tight.sources) == 1 and count(tight.text) <= count(render_sources(roomy.sources[:1])) + 5
    assert corpus.retrieve("u", "hello, how are you today?", token_budget=1000,
                           count_tokens=count).sources == []
    assert corpus.retrieve("u", "volcano", token_budget=0, count_tokens=count).text == ""


def test_markdown_chunks_fold_lone_headings_and_keep_offsets() -> None:
    text = "# Title\n\n" + "\n\n".join(f"## Part {i}\n\n" + f"Sentence {i} about things. " * 20
                                       for i in range(3))
    doc = LoadedDoc("Title", "markdown", [(None, text)])
    pieces = chunk_document(doc, size=300, overlap=30)
    assert all(end - start > 60 for _, start, end, _ in pieces)  # no heading-only chunk
    assert all(text[s:e] == t for _, s, e, t in pieces)


def test_cli_ingest_prints_a_summary_and_fails_on_missing_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.cli import main

    monkeypatch.setenv("LASTMILE_DATA_DIR", str(tmp_path / "data"))
    write(tmp_path / "in" / "a.md", "# A\n\nApples are red.")
    (tmp_path / "in" / "zero.txt").write_text("")
    assert main(["ingest", str(tmp_path / "in"), "--collection", "fruit", "--shared"]) == 0
    out = capsys.readouterr().out
    assert "collection 'fruit' (shared): 1 added, 1 skipped" in out and "zero.txt: empty file" in out
    assert main(["ingest", str(tmp_path / "in" / "a.md"), str(tmp_path / "nope"), "--collection",
                 "fruit", "--user", "ann"]) == 1
    assert "missing" in capsys.readouterr().out
