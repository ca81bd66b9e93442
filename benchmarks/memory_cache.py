"""The per-process memory cache against asking the Chroma server directly (issue 12).

Why: with ``LASTMILE_CHROMA_URL`` set, a replica could skip its cache and query Chroma on
every search. This stores ``--memories`` turns of one user (random unit vectors, so no
25 s of embedding; latency does not depend on the content) in Chroma — a ``chroma run``
server it starts with ``--server``, else embedded — and a SQLite generation log, then
prints: the first search (cold load) and what the cache holds (tracemalloc); a warm
search with its generation read; a search right after another replica's write (delta
applied); and Chroma's own filtered query (the dense half of a search only — BM25 needs
the user's texts anyway). Dense rankings of both paths are compared (overlap@10).

    python benchmarks/memory_cache.py [--memories 10000] [--queries 100] [--server]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from memory.db import open_engine
from memory.dense import DIM, QUERY_CACHE, chroma_dense
from memory.generations import MemoryGenerations, bump
from memory.minilm import get_encoder
from memory.retrieval import HybridRetriever, MemoryItem, _chroma_id, _meta
from memory.vectors import open_chroma

__all__ = ["main"]

USER = "big-user"


def _server(path: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def _fill(retriever: HybridRetriever, n: int, rng: np.random.Generator) -> None:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = datetime.now(UTC)
    for start in range(0, n, 1000):
        items = [MemoryItem(f"msg-{i}", f"turn {i}: the {i % 97}th note about kayaks and jazz {i % 13}",
                            session_id=f"s{i // 50}", seq=i % 50, timestamp=now)
                 for i in range(start, min(n, start + 1000))]
        retriever.collection.upsert(ids=[_chroma_id(USER, i.source_id) for i in items],
                                    documents=[i.text for i in items],
                                    embeddings=vectors[start:start + len(items)],
                                    metadatas=[_meta(USER, i) for i in items])


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--server", action="store_true", help="start a `chroma run` server")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as scratch:
        proc, url = _server(Path(scratch) / "chroma") if args.server else (None, None)
        try:
            engine = open_engine(f"sqlite:///{scratch}/bench.db")
            generations = MemoryGenerations(engine)
            client = open_chroma(Path(scratch) / "embedded", url)
            writer = HybridRetriever(client, generations=generations)
            _fill(writer, args.memories, rng)
            encoder = get_encoder()
            queries = [f"what did I say about kayaks number {i}?" for i in range(args.queries)]
            for q in queries:
                QUERY_CACHE.get(q, encoder.encode)  # embeddings cached: time the search alone
            where = "server" if url else "embedded"
            print(f"memory cache vs direct Chroma ({where}), {args.memories} memories, "
                  f"{args.queries} queries")
            reader = HybridRetriever(client, generations=generations)
            tracemalloc.start()
            started = time.perf_counter()
            reader.search(USER, queries[0])
            cold = time.perf_counter() - started
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            estimate = reader.ledger.get(USER).nbytes  # type: ignore[union-attr]
            print(f"first search (cold load)     {cold * 1000:8.0f} ms; cache holds {held / 1e6:.1f} MB "
                  f"(traced), estimate {estimate / 1e6:.1f} MB, "
                  f"{(held - reader.dense.nbytes(USER)) / args.memories:.0f} B/item beyond vectors")
            warm = []
            for q in queries:
                started = time.perf_counter()
                reader.search(USER, q)
                warm.append(time.perf_counter() - started)
            print(f"warm search (+ generation)   {_ms(warm)}")
            check = []
            for _ in queries:
                started = time.perf_counter()
                generations.since(USER, reader.ledger.get(USER).generation)  # type: ignore[union-attr]
                check.append(time.perf_counter() - started)
            print(f"  of which generation read   {_ms(check)}")
            after = []
            for i in range(min(30, len(queries))):
                sid = f"msg-new-{i}"
                vec = rng.standard_normal(DIM).astype(np.float32)
                writer.collection.upsert(ids=[_chroma_id(USER, sid)], documents=[f"new turn {i}"],
                                         embeddings=[vec / np.linalg.norm(vec)],
                                         metadatas=[_meta(USER, MemoryItem(sid, f"new turn {i}"))])
                with Session(engine) as db, db.begin():  # what mark_indexed does
                    bump(db, USER, added=[sid])
                started = time.perf_counter()
                hits = reader.search(USER, f"new turn {i}")
                after.append(time.perf_counter() - started)
                assert any(h.item.source_id == sid for h in hits), "a write was not seen"
            print(f"search after another write   {_ms(after)} (delta applied; every write seen)")
            direct, overlap = [], []
            for q in queries:
                vector = QUERY_CACHE.get(q, encoder.encode)
                started = time.perf_counter()
                got = chroma_dense(reader.collection, USER, vector, 50)
                direct.append(time.perf_counter() - started)
                mine = [sid for sid, _ in reader.dense.search(USER, vector, 10)]
                overlap.append(len(set(mine) & set(got[:10])) / 10)
            print(f"direct Chroma dense query    {_ms(direct)} (dense half only; "
                  f"overlap@10 with the cache {statistics.mean(overlap):.2f})")
            engine.dispose()
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
