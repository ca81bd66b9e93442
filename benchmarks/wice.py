"""WiCE dev: ROC AUC of the citation checker's claim score for "fully supported vs not",
plus ms per claim.

Why: WiCE (Kamoi et al., EMNLP 2023) checks real Wikipedia sentences against the web pages
they cite -- harder than the hand-written labelled set. Each row is a claim with "oracle
chunk" evidence sentences; a claim has about 3 rows and its score is the maximum over them
(as the authors score it). Dev only: other splits are used for checking, never tuned on.

    python benchmarks/wice.py [--data DIR/dev.jsonl] [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guardrails.citations import THRESHOLD, verify_citations

__all__ = ["DATA", "auc", "evaluate", "main"]

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wice" / "dev.jsonl"


def auc(scores: list[float], gold: list[bool]) -> float:
    """ROC AUC by ranks (ties count half): P(score of a positive > score of a negative)."""
    pos = [s for s, g in zip(scores, gold, strict=True) if g]
    neg = [s for s, g in zip(scores, gold, strict=True) if not g]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Claim score = max over the claim's rows of the checker's score, claim cited as [1]."""
    best: dict[str, float] = defaultdict(float)
    label: dict[str, str] = {}
    t0 = time.perf_counter()
    for row in rows:
        cid = row["meta"]["id"]
        claim = row["claim"].rstrip()
        claim = (claim[:-1] + " [1]" + claim[-1]) if claim.endswith((".", "!", "?")) else claim + " [1]"
        report = verify_citations(claim, {"1": "\n".join(row["evidence"])})
        score = min((s.score for s in report.sentences if s.cited), default=0.0)
        best[cid] = max(best[cid], score)
        label[cid] = row["label"]
    elapsed = time.perf_counter() - t0
    ids = sorted(best)
    gold = [label[i] == "supported" for i in ids]
    scores = [best[i] for i in ids]
    flagged = [s < THRESHOLD for s in scores]
    tp = sum(f and not g for f, g in zip(flagged, gold, strict=True))
    fp = sum(f and g for f, g in zip(flagged, gold, strict=True))
    fn = sum((not f) and (not g) for f, g in zip(flagged, gold, strict=True))
    return {"claims": len(ids), "rows": len(rows), "supported": sum(gold),
            "roc_auc": round(auc(scores, gold), 4),
            "flag_precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "flag_recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
            "ms_per_claim": round(elapsed * 1000 / max(1, len(ids)), 1),
            "ms_per_row": round(elapsed * 1000 / max(1, len(rows)), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, help="first N claims only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    path = Path(args.data)
    if not path.exists():
        print(f"WiCE dev not found at {path}; skipped")
        return 0
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.limit:
        keep = list(dict.fromkeys(r["meta"]["id"] for r in rows))[: args.limit]
        rows = [r for r in rows if r["meta"]["id"] in set(keep)]
    from memory.minilm import get_encoder

    get_encoder().encode(["warm up"])
    res = evaluate(rows)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"WiCE dev: {res['claims']} claims ({res['supported']} supported), "
              f"ROC AUC {res['roc_auc']:.3f}; "
              f"flag precision {res['flag_precision']:.3f} recall {res['flag_recall']:.3f} at THRESHOLD; "
              f"{res['ms_per_claim']} ms/claim ({res['ms_per_row']} ms/row)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
