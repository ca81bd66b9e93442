"""How often the semantic reply cache would serve a right (and a wrong) answer.

Why: a semantic cache hit on a question that only *looks* like an earlier one serves a
wrong answer, which is worse than a miss. This scores hand-labelled question pairs
(``tests/data/semantic_cache_pairs.jsonl``: same meaning or not) at several cosine
thresholds, with and without the lexical guard (``assistant.layers.cache.same_question``).
MiniLM runs locally; no downloads, deterministic.

    python benchmarks/semantic_cache.py [--thresholds 0.85,0.9,0.95] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from assistant.layers.cache import same_question
from memory.minilm import get_encoder

__all__ = ["PAIRS", "main", "score"]

PAIRS = Path(__file__).parents[1] / "tests" / "data" / "semantic_cache_pairs.jsonl"


def score(pairs: list[dict], thresholds: list[float]) -> list[dict]:
    """Per threshold and guard setting: right hits (same meaning) and wrong hits."""
    encoder = get_encoder()
    vectors = encoder.encode([text for p in pairs for text in (p["a"], p["b"])])
    sims = [float(np.dot(vectors[2 * i], vectors[2 * i + 1])) for i in range(len(pairs))]
    guards = [same_question(p["a"], p["b"]) for p in pairs]
    same = sum(p["same"] for p in pairs)
    rows = []
    for threshold in thresholds:
        for guard in (False, True):
            hits = [p for p, s, g in zip(pairs, sims, guards, strict=True)
                    if s >= threshold and (g or not guard)]
            right = sum(p["same"] for p in hits)
            rows.append({"threshold": threshold, "guard": guard, "right_hits": right,
                         "same_pairs": same, "wrong_hits": len(hits) - right,
                         "different_pairs": len(pairs) - same})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="0.85,0.9,0.95")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    rows = score(pairs, [float(t) for t in args.thresholds.split(",")])
    if args.json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return 0
    print(f"{len(pairs)} labelled pairs ({PAIRS.name})")
    print("threshold  guard  right hits (same meaning)  wrong hits (different meaning)")
    for r in rows:
        print(f"{r['threshold']:>9}  {'yes' if r['guard'] else 'no ':>5}  "
              f"{r['right_hits']:>5} / {r['same_pairs']:<19}  {r['wrong_hits']:>5} / {r['different_pairs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
