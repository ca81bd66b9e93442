"""Corpus ingestion: files and folders into ``sources``/``chunks`` rows and Chroma vectors.

Idempotent by content hash: an unchanged file costs one read and one hash; a changed
file is re-chunked (old chunks and vectors replaced); a file gone from an ingested
folder (or a named file that no longer exists) is removed. A source row only gets its
hash after Chroma accepted its vectors, so a crash mid-way is repaired by the next run.
Bad files never stop an ingest: each becomes one line of the ``IngestReport``.

Every new chunk is scanned for prompt injection (``scanner``) and carries its verdict
(``injection_score`` / ``injection_rules``); a chunk at or above ``threshold`` is counted in
the report and written to the audit log (ids and a hash, never the text), so a poisoned
document is known the moment it arrives, not only when a question happens to retrieve it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from assistant.audit import audit
from assistant.errors import DocumentRejected
from memory.loaders import KINDS, LoadedDoc, load
from memory.models import Chunk, Source, utcnow

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Metadata

#: text -> (injection score, rule names), e.g. ``guardrails.injection.scan`` adapted.
Scanner = Callable[[str], tuple[float, Sequence[str]]]

__all__ = ["FileResult", "IngestReport", "chunk_document", "collect_files", "ingest_files", "prune_source"]


@dataclass(frozen=True)
class FileResult:
    path: str
    #: added / updated / unchanged / removed / skipped / rejected / missing
    status: str
    chunks: int = 0
    detail: str = ""
    #: Chunks marked as a possible prompt injection at ingest.
    marked: int = 0


@dataclass
class IngestReport:
    collection: str
    owner: str
    files: list[FileResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def problems(self) -> list[FileResult]:
        return [f for f in self.files if f.status in ("skipped", "rejected", "missing")]

    def summary(self) -> str:
        """One line of counts, then one line per file that was not ingested."""
        counts = ", ".join(f"{self.count(s)} {s}" for s in
                           ("added", "updated", "unchanged", "removed", "skipped", "rejected", "missing")
                           if self.count(s))
        lines = [f"collection {self.collection!r} ({self.owner}): {counts or 'nothing to do'}"]
        lines += [f"  {f.status}: {f.detail or f.path}" for f in self.problems]
        lines += [f"  marked: {f.path}: {f.marked} chunk{'s' if f.marked != 1 else ''} look like "
                  "prompt injection"
                  " (audited; the guards keep them out of prompts)" for f in self.files if f.marked]
        return "\n".join(lines)


def collect_files(paths: Iterable[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """(files to ingest, folders walked, named paths that do not exist). Folders are
    walked recursively for known suffixes, skipping hidden entries; named files are
    taken whatever their suffix (binary ones are refused at load)."""
    files: list[Path] = []
    roots: list[Path] = []
    missing: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.is_dir():
            roots.append(path)
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KINDS
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(path)
    return list(dict.fromkeys(files)), roots, missing


def chunk_document(doc: LoadedDoc, *, size: int, overlap: int) -> list[tuple[int | None, int, int, str]]:
    """``(page, char_start, char_end, text)`` per chunk; offsets index the page's text
    (the whole text for non-PDFs). Markdown splits on headings first."""
    overlap = min(overlap, size // 2)
    if doc.kind == "markdown":
        splitter = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=size, chunk_overlap=overlap, add_start_index=True)
    else:
        splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap,
                                                  add_start_index=True)
    out = []
    for page, text in doc.pages:
        spans: list[tuple[int, int]] = []
        for piece in splitter.create_documents([text]):
            start = int(piece.metadata.get("start_index", -1))
            if start < 0:  # the splitter could not locate it (never for exact substrings)
                start = max(0, text.find(piece.page_content))
            end = start + len(piece.page_content)
            # A lone heading ("## Errors") says nothing: fold it into the chunk after it.
            if spans and spans[-1][1] - spans[-1][0] < size // 4 and end - spans[-1][0] <= size * 3 // 2:
                start = spans.pop()[0]
            spans.append((start, end))
        out += [(page, s, e, text[s:e]) for s, e in spans]
    return out


def prune_source(db: Session, source: Source) -> list[str]:
    """Delete a source's chunks; return their Chroma ids."""
    ids = list(db.scalars(select(Chunk.id).where(Chunk.source_id == source.id)))
    db.execute(delete(Chunk).where(Chunk.source_id == source.id))
    return [f"chunk-{i}" for i in ids]


def ingest_files(
    sessions: Callable[[], Session], vectors: Collection, paths: Sequence[Path], *, owner: str,
    collection: str, max_bytes: int, chunk_chars: int, overlap: int,
    progress: bool = False, scanner: Scanner | None = None, threshold: float = 0.6,
) -> IngestReport:
    """Ingest ``paths`` into ``collection`` for ``owner`` (``user:<id>`` or ``shared``)."""
    from tqdm import tqdm

    report = IngestReport(collection, owner)
    files, roots, missing = collect_files(paths)
    with sessions() as db:
        known = {s.path: s for s in db.scalars(select(Source).where(
            Source.owner == owner, Source.collection == collection))}
    for path in tqdm(files, desc=f"ingest {collection}", unit="file", disable=not progress):
        report.files.append(_ingest_one(sessions, vectors, path, known.get(str(path)), owner=owner,
                                        collection=collection, max_bytes=max_bytes,
                                        chunk_chars=chunk_chars, overlap=overlap,
                                        scanner=scanner, threshold=threshold))
    # Removed: files gone from a walked folder, and named files that no longer exist.
    seen = {str(p) for p in files}
    gone = [s for p, s in known.items() if p not in seen and (
        any(Path(p).is_relative_to(r) for r in roots) or Path(p) in missing)]
    for source in gone:
        with sessions() as db, db.begin():
            row = db.get(Source, source.id)
            ids = prune_source(db, row) if row else []
            if row:
                db.delete(row)
        if ids:
            vectors.delete(ids=ids)
        report.files.append(FileResult(source.path, "removed", source.chunk_count))
    gone_paths = {Path(s.path) for s in gone}
    report.files += [FileResult(str(p), "missing", detail=f"{p}: no such file or folder")
                     for p in missing if p not in gone_paths]
    return report


def _ingest_one(sessions: Callable[[], Session], vectors: Collection, path: Path, old: Source | None, *,
                owner: str, collection: str, max_bytes: int, chunk_chars: int,
                overlap: int, scanner: Scanner | None = None, threshold: float = 0.6) -> FileResult:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentRejected(
                f"{path}: {size:,} bytes exceeds the {max_bytes / 1e6:g} MB limit "
                "(LASTMILE_INGEST_MAX_FILE_MB)", path=str(path))
        data = path.read_bytes()
    except DocumentRejected as exc:
        return FileResult(str(path), "rejected", detail=str(exc))
    except OSError as exc:
        return FileResult(str(path), "skipped", detail=f"{path}: cannot read ({exc.strerror or exc})")
    digest = hashlib.sha256(data).hexdigest()
    if old is not None and old.sha256 == digest:
        return FileResult(str(path), "unchanged", old.chunk_count)
    try:
        doc = load(path, data)
    except DocumentRejected as exc:
        return FileResult(str(path), "skipped", detail=str(exc))
    pieces = chunk_document(doc, size=chunk_chars, overlap=overlap)
    with sessions() as db, db.begin():
        row = db.scalar(select(Source).where(Source.owner == owner, Source.collection == collection,
                                             Source.path == str(path)))
        stale = prune_source(db, row) if row is not None else []
        if row is None:
            row = Source(owner=owner, collection=collection, path=str(path))
            db.add(row)
        row.title, row.kind, row.size_bytes = doc.title[:300], doc.kind, size
        row.sha256 = ""  # set once the vectors are in (crash-safe re-ingest)
        row.pages = len(doc.pages) if doc.kind == "pdf" else None
        row.chunk_count, row.ingested_at = len(pieces), utcnow()
        db.flush()
        chunks = [Chunk(source_id=row.id, owner=owner, collection=collection, seq=n, page=page,
                        char_start=start, char_end=end, text=text, **_verdict(scanner, text))
                  for n, (page, start, end, text) in enumerate(pieces)]
        db.add_all(chunks)
        db.flush()
        marked = [c for c in chunks if (c.injection_score or 0.0) >= threshold]
        source_id = row.id
        ids = [f"chunk-{c.id}" for c in chunks]
        metas: list[Metadata] = [{"owner": owner, "collection": collection, "source_id": source_id,
                                  "path": str(path), "seq": c.seq} for c in chunks]
        texts = [f"{doc.title}\n{c.text}" for c in chunks]  # the title helps short chunks match
    if stale:
        vectors.delete(ids=stale)
    for start in range(0, len(ids), 256):
        vectors.upsert(ids=ids[start:start + 256], documents=texts[start:start + 256],
                       metadatas=metas[start:start + 256])
    with sessions() as db, db.begin():
        db.get_one(Source, source_id).sha256 = digest
    for chunk in marked:
        audit("injection", guard="injection", hook="ingest", action="mark",
              rules=(chunk.injection_rules or "").split(","), score=chunk.injection_score,
              threshold=threshold, owner=owner,
              user_id=owner.split(":", 1)[1] if owner.startswith("user:") else None,
              collection=collection, source_id=source_id, chunk_id=f"chunk-{chunk.id}",
              text_sha256=hashlib.sha256(chunk.text.encode("utf-8", "replace")).hexdigest()[:12],
              chars=len(chunk.text))
    return FileResult(str(path), "updated" if old is not None else "added", len(pieces),
                      marked=len(marked))


def _verdict(scanner: Scanner | None, text: str) -> dict[str, object]:
    """The chunk's injection columns (both ``None`` without a scanner)."""
    if scanner is None:
        return {}
    score, rules = scanner(text)
    return {"injection_score": float(score), "injection_rules": ",".join(rules)[:500] or None}
