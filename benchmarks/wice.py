"""WiCE dev: ROC AUC of the citation checker's claim score for "fully supported vs not",
plus ms per claim.

Why: WiCE (Kamoi et al., EMNLP 2023) checks real Wikipedia sentences against the web pages
they cite -- harder than the hand-written labelled set. Each row is a claim with "oracle
chunk" evidence sentences; a claim has about 3 rows and its score is the maximum over them
(as the authors score it). Dev only: other splits are used for checking, never tuned on.

    python benchmarks/wice.py [--data DIR/dev.jsonl] [--limit N] [--json]
                              [--judge SPEC|oracle] [--band LO,HI] [--max-calls N]

``--judge`` adds the optional citation judge (``guardrails.judging``) on the claims whose
checker score falls in ``--band``: SPEC is a provider spec as in ``LASTMILE_PROVIDERS``
(``local``, ``openai:gpt-4o-mini`` with its key in the environment ...), built with the
settings of this environment. ``oracle`` answers from the gold label: not a result but
the ceiling a judge on that band can reach, and what share of claims it is asked about.
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
from guardrails.judging import BAND, Judge, judged, refine

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


def _oracle(label: str) -> Judge:
    verdict = {"supported": "supported", "partially_supported": "partial"}.get(label, "not_supported")
    return lambda *_a, **_k: verdict


def evaluate(rows: list[dict[str, Any]], judge: Judge | str | None = None, band: tuple[float, float] = BAND,
             max_calls: int = 1) -> dict[str, Any]:
    """Claim score = max over the claim's rows of the checker's score, claim cited as [1]
    (re-scored by ``judge`` where it falls in ``band``; "oracle": the gold label's)."""
    best: dict[str, float] = defaultdict(float)
    label: dict[str, str] = {}
    asked: set[str] = set()
    calls = 0
    t0 = time.perf_counter()
    for row in rows:
        cid = row["meta"]["id"]
        claim = row["claim"].rstrip()
        claim = (claim[:-1] + " [1]" + claim[-1]) if claim.endswith((".", "!", "?")) else claim + " [1]"
        sources = {"1": "\n".join(row["evidence"])}
        report = verify_citations(claim, sources)
        if judge is not None:
            who = _oracle(row["label"]) if judge == "oracle" else judge
            before = [s.score for s in report.sentences]
            report = refine(report, sources, who, band=band, max_calls=max_calls)  # type: ignore[arg-type]
            if judged(report.sentences) or [s.score for s in report.sentences] != before:
                asked.add(cid)
            calls += sum(band[0] <= b <= band[1] for b in before)
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
            "ms_per_row": round(elapsed * 1000 / max(1, len(rows)), 1),
            "judged_claims": len(asked), "judge_calls": calls}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, help="first N claims only")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--judge", help="provider spec of a citation judge, or 'oracle' (the ceiling)")
    ap.add_argument("--band", default=",".join(map(str, BAND)), help="checker scores judged: LO,HI")
    ap.add_argument("--max-calls", type=int, default=1, help="judge calls per row (one claim each)")
    args = ap.parse_args(argv)
    band = tuple(float(x) for x in args.band.split(","))
    if len(band) != 2 or not band[0] < THRESHOLD <= band[1]:
        ap.error(f"--band needs LO < {THRESHOLD} <= HI")
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
    res = evaluate(rows, _judge(args.judge), band, args.max_calls)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(res))
    else:
        print(f"WiCE dev: {res['claims']} claims ({res['supported']} supported), "
              f"ROC AUC {res['roc_auc']:.3f}; "
              f"flag precision {res['flag_precision']:.3f} recall {res['flag_recall']:.3f} at THRESHOLD; "
              f"{res['ms_per_claim']} ms/claim ({res['ms_per_row']} ms/row)"
              + (f"; judge {args.judge} on band {band}: {res['judged_claims']} claims judged "
                 f"({res['judged_claims'] / max(1, res['claims']):.0%}), {res['judge_calls']} calls"
                 if args.judge else ""))
    return 0


def _judge(spec: str | None) -> Judge | str | None:
    """None, "oracle", or a ``ModelJudge`` over the chain ``spec`` names."""
    if spec in (None, "oracle"):
        return spec
    from assistant.judge import ModelJudge
    from assistant.providers import build_model
    from assistant.settings import Settings

    return ModelJudge(build_model(Settings(providers=spec)))


if __name__ == "__main__":
    raise SystemExit(main())
