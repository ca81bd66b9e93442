"""Post-hoc attribution on the labelled citation set: does lastmile cite the right source
for an uncited sentence, and nothing for a wrong one?

Why: ``guardrails.attribution`` picks the best of several shown sources, a multiple
comparison, so its false-attribution rate must be measured, not assumed equal to the
checker's. Each single-source case of ``tests/data/citation_cases*.jsonl`` labelled
``supported`` or ``unsupported`` becomes an uncited sentence shown with its own source
plus ``--distractors`` sources from other topics (deterministic, ids shuffled). An
attribution is correct when a ``supported`` case gets its own source; any attribution of
an ``unsupported`` case (wrong number, swapped name, negation, antonym, partial, ...) is
a false one. Reported per margin over ``THRESHOLD`` (the shipped margin is ``MARGIN``).

    python benchmarks/attribution.py [--distractors 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.citations import load_cases
from guardrails.attribution import MARGIN, attribute
from guardrails.citations import THRESHOLD, verify_citations
from guardrails.claims import parse_markers

__all__ = ["evaluate", "main"]
MARGINS = (0.0, 0.025, MARGIN, 0.1)


def _topic(case: dict[str, Any]) -> str:
    return case["id"].rsplit("-", 1)[0]


def evaluate(cases: list[dict[str, Any]], distractors: int = 3, seed: int = 7) -> dict[str, Any]:
    """Attribution precision / recall / false-attribution rate per margin, and latency."""
    rng = random.Random(seed)
    usable = [c for c in cases if c["label"] in ("supported", "unsupported") and len(c["cited"]) == 1
              and c["cited"][0] in c["sources"]]
    texts = {(_topic(c), c["sources"][c["cited"][0]]) for c in usable}
    rows, ms = [], []
    for case in usable:
        own = case["sources"][case["cited"][0]]
        others = sorted({t for topic, t in texts if topic != _topic(case) and t != own})
        pool = [own, *rng.sample(others, min(distractors, len(others)))]
        rng.shuffle(pool)
        sources = {str(i + 1): t for i, t in enumerate(pool)}
        sentence = parse_markers(case["sentence"])[0]
        t0 = time.perf_counter()
        report = verify_citations(sentence, sources)
        found = attribute(report.sentences, sources, margin=0.0)
        ms.append((time.perf_counter() - t0) * 1000 / max(1, len(report.sentences)))
        best = found[0] if found else None
        own_id = next(k for k, v in sources.items() if v == own)
        cited = verify_citations(f"{sentence} [{own_id}]", sources).sentences  # the model citing it
        rows.append((case["label"], best and sources[best.source_id] == own, best.score if best else None,
                     any(x.verdict == "supported" for x in cited)))
    out: dict[str, Any] = {"cases": len(rows), "supported": sum(r[0] == "supported" for r in rows),
                           "unsupported": sum(r[0] == "unsupported" for r in rows), "margins": {}}
    passed = [label for label, _, _, ok in rows if ok]
    out["cited_by_model"] = {
        "recall": round(passed.count("supported") / max(1, out["supported"]), 4),
        "false_pass_rate": round(passed.count("unsupported") / max(1, out["unsupported"]), 4)}
    for m in MARGINS:
        kept = [(label, right) for label, right, score, _ in rows if score is not None and score >= THRESHOLD + m]
        correct = sum(label == "supported" and right for label, right in kept)
        false_bad = sum(label == "unsupported" for label, _ in kept)
        out["margins"][f"{m:g}"] = {
            "attributed": len(kept),
            "precision": round(correct / len(kept), 4) if kept else 1.0,
            "recall": round(correct / max(1, out["supported"]), 4),
            "false_attribution_rate": round(false_bad / max(1, out["unsupported"]), 4),
            "wrong_source": sum(label == "supported" and not right for label, right in kept)}
    ms.sort()
    out["ms_per_sentence"] = {"p50": round(ms[len(ms) // 2], 2),
                              "p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--distractors", type=int, default=3, help="other-topic sources shown per case")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    from memory.minilm import get_encoder

    get_encoder().encode(["warm up"])
    res = evaluate(load_cases(), args.distractors)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['cases']} cases ({res['supported']} supported, {res['unsupported']} unsupported), "
          f"{args.distractors} distractor sources each")
    for m, r in res["margins"].items():
        print(f"margin {m:>5}: attributed {r['attributed']:3d}  precision {r['precision']:.3f}  "
              f"recall {r['recall']:.3f}  false attribution {r['false_attribution_rate']:.3f}  "
              f"wrong source {r['wrong_source']}")
    base = res["cited_by_model"]
    print(f"same sentences cited correctly by the model: recall {base['recall']:.3f}  "
          f"false pass {base['false_pass_rate']:.3f}")
    print(f"ms/sentence (check + attribution): p50 {res['ms_per_sentence']['p50']}  "
          f"p95 {res['ms_per_sentence']['p95']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
