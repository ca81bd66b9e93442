"""Memory search latency at 10,000 memories per user (hybrid, dense-only, lexical-only).

Why: the LoCoMo users hold ~550 memories; a long-lived user holds far more, and search
runs on every turn. Stores ``--memories`` synthetic but varied conversation turns for one
user (plus ``--other`` for a second user, so the user filter has work to do) in a scratch
Chroma store, opens a fresh retriever on it (as a new process would), then times
``search`` over ``--queries`` distinct queries. The first query is reported separately:
it pays the lazy load of the user's items, BM25 index and vector matrix from Chroma.
Every mode starts with an empty query-embedding cache, so its figures include embedding
each query; the "_cached" rows re-ask the same queries (embeddings cached, so
they time the matrix product, BM25, fusion and neighbour expansion alone). On a busy
2-core box multi-threaded OpenBLAS makes single-query embedding spiky (10-30 ms typical,
up to ~300 ms); ``OPENBLAS_NUM_THREADS=1`` for the serving process keeps it at ~10-15 ms.
Texts are deterministic; no downloads. Embedding 10,000 turns takes ~25 s.

    python benchmarks/memory_search.py [--memories 10000] [--other 500] [--queries 200]
                                       [--k 10] [--max-p95-ms 50] [--json] [--store DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from memory.dense import QueryEmbeddingCache
from memory.minilm import get_encoder
from memory.retrieval import HybridRetriever, MemoryItem, RetrievalConfig, with_weights
from memory.vectors import open_chroma

__all__ = ["main", "memories", "queries"]

_NAMES = ("Maria", "Tom", "Priya", "Kenji", "Olga", "Samir", "Lucia", "Ben", "Aiko", "Dmitri",
          "Fatima", "Jonas", "Chloe", "Mateo", "Ingrid", "Kwame")
_PLACES = ("Lisbon", "the lake house", "Nairobi", "the climbing gym", "Kyoto", "my office",
           "the farmers market", "Reykjavik", "the hospital", "a jazz bar", "Seville", "the library")
_THINGS = ("a golden retriever puppy", "a vintage guitar", "the quarterly budget", "a sourdough starter",
           "a broken bicycle", "an oil painting", "a marathon training plan", "the tax return",
           "a chess set", "a pottery vase", "a telescope", "the wedding playlist", "a kayak",
           "an old camera", "the garden shed", "a novel about volcanoes")
_VERBS = ("bought", "fixed", "sold", "painted", "lost", "found", "borrowed", "finished", "started",
          "talked about", "planned", "cancelled")
_FEELINGS = ("I was thrilled", "honestly it was stressful", "we laughed the whole time",
             "it felt like a fresh start", "I am still a bit annoyed", "it went better than expected",
             "my back hurts now", "nobody believed me")
_WHEN = ("yesterday", "last weekend", "this morning", "two weeks ago", "on Friday night",
         "after work", "during the holidays", "before lunch")
_TOPICS = ("work", "family", "travel", "health", "money", "hobbies", "food", "pets", "music", "sport")
_SMALLTALK = ("That sounds amazing!", "Oh no, what happened next?", "Haha, classic {n}.",
              "Did {n} come along too?", "You should totally do that again.",
              "How long did that take?", "Send me a photo!", "I had no idea.")


def memories(n: int, seed: int = 0, prefix: str = "m") -> list[MemoryItem]:
    """n varied conversation turns in sessions of 10-30 turns, each session dated."""
    rng = random.Random(seed)
    out: list[MemoryItem] = []
    day = datetime(2022, 1, 3, 9, 0)
    session = 0
    while len(out) < n:
        session += 1
        day += timedelta(days=rng.randint(1, 4), minutes=rng.randint(0, 600))
        topic = rng.choice(_TOPICS)
        for seq in range(min(rng.randint(10, 30), n - len(out))):
            name = rng.choice(_NAMES)
            if rng.random() < 0.3:
                text = rng.choice(_SMALLTALK).format(n=name)
            else:
                text = (f"{rng.choice(_WHEN).capitalize()} {name} and I {rng.choice(_VERBS)} "
                        f"{rng.choice(_THINGS)} near {rng.choice(_PLACES)}; {rng.choice(_FEELINGS)}. "
                        f"(#{topic} {rng.randrange(10_000)})")
            speaker = "User" if seq % 2 == 0 else "Assistant"
            out.append(MemoryItem(f"{prefix}{len(out)}", f"{speaker}: {text}", session_id=f"s{session}",
                                  speaker=speaker, timestamp=day, seq=seq))
    return out


def queries(n: int, seed: int = 1) -> list[str]:
    """n distinct questions of varied shapes: names, paraphrases, 'when' questions."""
    rng = random.Random(seed)
    shapes = (
        lambda: f"What did {rng.choice(_NAMES)} and I do with {rng.choice(_THINGS)}?",
        lambda: f"When did I go to {rng.choice(_PLACES)} with {rng.choice(_NAMES)}?",
        lambda: f"Have I ever {rng.choice(_VERBS)} {rng.choice(_THINGS)}?",
        lambda: f"tell me about {rng.choice(_TOPICS)} and {rng.choice(_NAMES)}",
        lambda: f"how did I feel after the trip to {rng.choice(_PLACES)}",
        lambda: f"Who helped me with {rng.choice(_THINGS)} {rng.choice(_WHEN)}?",
        lambda: f"{rng.choice(_NAMES)} {rng.choice(_PLACES)}",
        lambda: f"what instrument or hobby was I into around {rng.choice(_WHEN)}",
    )
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(rng.choice(shapes)(), None)
    return list(seen)


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2),
            "max": round(max(ms), 2), "n": len(ms)}


def _time(retriever: HybridRetriever, user: str, qs: list[str], k: int, config: RetrievalConfig,
          *, cached: bool = False) -> dict[str, float]:
    """Search latency percentiles; ``cached``: every query embedded beforehand (a repeat)."""
    retriever.query_cache = QueryEmbeddingCache(1024)
    if cached:
        for q in qs:
            retriever.search(user, q, k=k, config=config)
    ms = []
    for q in qs:
        start = time.perf_counter()
        retriever.search(user, q, k=k, config=config)
        ms.append((time.perf_counter() - start) * 1e3)
    return _percentiles(ms)


def run(n_memories: int, n_other: int, n_queries: int, k: int, store: Path | None = None) -> dict:
    """``store``: a Chroma directory kept between runs; memories already there (same
    counts) are not embedded again, so a re-measurement skips the minutes of ingest."""
    get_encoder().encode(["warm up the encoder"])  # weights load once per process
    with tempfile.TemporaryDirectory(prefix="memsearch-chroma-") as scratch:
        where = store or Path(scratch)
        writer = HybridRetriever(open_chroma(where), collection="memories")
        start = time.perf_counter()
        if (writer.count("alice"), writer.count("bob")) != (n_memories, n_other):
            writer.add("alice", memories(n_memories, seed=0, prefix="a"))
            writer.add("bob", memories(n_other, seed=7, prefix="b"))
        ingest_s = time.perf_counter() - start
        retriever = HybridRetriever(open_chroma(where), collection="memories")  # a new process
        qs = queries(n_queries + 1)
        hybrid = retriever.config
        start = time.perf_counter()
        retriever.search("alice", qs[0], k=k, config=hybrid)  # lazy load: items, BM25, vectors
        cold_ms = (time.perf_counter() - start) * 1e3
        shown = {sid for h in retriever.search("alice", qs[1], k=50) for sid in h.source_ids}
        if not shown or not all(s.startswith("a") for s in shown):
            raise AssertionError(f"another user's memory was returned: {sorted(shown)[:5]}")
        qs = qs[1:]
        return {
            "load_avg_1m": round(os.getloadavg()[0], 2), "memories": retriever.count("alice"), "other_user_memories": retriever.count("bob"),
            "ingest_s": round(ingest_s, 1), "cold_first_query_ms": round(cold_ms, 1),
            "hybrid": _time(retriever, "alice", qs, k, hybrid),
            "dense": _time(retriever, "alice", qs, k, with_weights(hybrid, dense=1, lexical=0)),
            "lexical": _time(retriever, "alice", qs, k, with_weights(hybrid, dense=0, lexical=1)),
            "hybrid_cached": _time(retriever, "alice", qs, k, hybrid, cached=True),
            "dense_cached": _time(retriever, "alice", qs, k, with_weights(hybrid, dense=1, lexical=0),
                                  cached=True),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=10_000, help="memories of the measured user")
    parser.add_argument("--other", type=int, default=500, help="memories of a second user")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-p95-ms", type=float, default=None, help="exit 1 if hybrid p95 is above")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--store", type=Path, help="keep the Chroma store here and reuse it next time")
    args = parser.parse_args(argv)
    result = run(args.memories, args.other, args.queries, args.k, args.store)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['memories']} memories (+{result['other_user_memories']} of another user); "
              f"ingest {result['ingest_s']} s; cold first query {result['cold_first_query_ms']} ms; "
              f"load average {result['load_avg_1m']}")
        for name in ("hybrid", "dense", "lexical", "hybrid_cached", "dense_cached"):
            r = result[name]
            print(f"{name:<26} p50 {r['p50']:7.2f} ms   p95 {r['p95']:7.2f} ms   max {r['max']:7.2f} ms"
                  f"   ({r['n']} queries)")
    p95 = result["hybrid"]["p95"]
    if args.max_p95_ms is not None and p95 > args.max_p95_ms:
        print(f"FAIL hybrid p95 {p95:.1f} ms > {args.max_p95_ms:.1f} ms", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
