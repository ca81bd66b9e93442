"""Precision / recall of flagging bad citations on the labelled set, plus latency.

Why: ``guardrails.citations`` is rule + embedding based with calibrated thresholds; this
keeps its quality honest on a held-out split. A case is a positive if its gold label is
not "supported" and it is a claim (filler sentences, ``"claim": false``, must not be
flagged); it is predicted positive if any of its sentences lands in ``report.flagged``.
Thresholds are tuned on the dev splits only (``dev``, ``dev2``); ``test`` and ``holdout``
are reported (``holdout`` was written fresh and never inspected case by case).

    python benchmarks/citations.py [--data FILE.jsonl ...] [--json]
                                   [--split test] [--min-precision 0.9] [--min-recall 0.85]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from guardrails.citations import verify_citations

__all__ = ["BINDING", "DATA", "FRESH", "answer_for", "binding_rates", "evaluate", "load_cases",
           "main"]

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "citation_cases.jsonl"
#: Cases written later, after the first tuning round: ``dev2`` (looked at) and ``holdout``
#: (never looked at case by case, never tuned on).
FRESH = DATA.with_name("citation_cases_fresh.jsonl")
#: Values bound to conditions, tiers, groups and ranges (issue 13), new topics, its own
#: splits ``binding_dev`` / ``binding_test``; kept apart so the older figures stay comparable.
BINDING = DATA.with_name("binding_cases.jsonl")


def load_cases(*paths: Path | str) -> list[dict[str, Any]]:
    """Every labelled case (both files by default)."""
    out = []
    for path in paths or (DATA, FRESH):
        out += [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def answer_for(case: dict[str, Any]) -> str:
    """The case sentence with its markers just before the final punctuation: 'x [1][2].'"""
    text = case["sentence"].rstrip()
    if not case["cited"]:
        return text
    marks = "".join(f"[{c}]" for c in case["cited"])
    if text and text[-1] in ".!?":
        return f"{text[:-1]} {marks}{text[-1]}"
    return f"{text} {marks}"


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "tp": tp, "fp": fp, "fn": fn}


def evaluate(cases: list[dict[str, Any]], threshold: float | None = None) -> dict[str, Any]:
    """Run every case through ``verify_citations``; precision/recall per split and overall."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    ms: list[float] = []
    errors = []
    for case in cases:
        t0 = time.perf_counter()
        report = verify_citations(answer_for(case), case["sources"], threshold=threshold)
        ms.append((time.perf_counter() - t0) * 1000 / max(1, len(report.sentences)))
        pred = bool(report.flagged)
        gold = case["label"] != "supported" and case.get("claim", True)
        bad = [s.verdict for s in report.sentences if s.verdict != "supported"]
        verdict = bad[0] if bad else "supported"
        for key in (case["split"], "all"):
            c = counts[key]
            c[0] += pred and gold
            c[1] += pred and not gold
            c[2] += gold and not pred
        kinds[case["kind"]][0] += verdict == case["label"] and pred == gold
        kinds[case["kind"]][1] += 1
        if pred != gold:
            errors.append({"id": case["id"], "split": case["split"], "kind": case["kind"],
                           "gold": case["label"], "got": verdict,
                           "scores": [s.score for s in report.sentences],
                           "reasons": [r for s in report.sentences for r in s.reasons]})
    ms.sort()
    return {"cases": len(cases),
            **{k: _prf(*v) for k, v in sorted(counts.items())},
            "per_kind_accuracy": {k: round(a / n, 3) for k, (a, n) in sorted(kinds.items())},
            "ms_per_sentence": {"p50": round(ms[len(ms) // 2], 2),
                                "p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2)} if ms else {},
            "errors": errors}


def binding_rates(cases: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per split: share of wrong bindings flagged, share of right ones passed."""
    out: dict[str, dict[str, float]] = {}
    for split in sorted({c["split"] for c in cases}):
        wrong = right = flagged = passed = 0
        for case in (c for c in cases if c["split"] == split):
            ok = verify_citations(answer_for(case), case["sources"]).sentences[0].verdict == "supported"
            if case["label"] == "supported":
                right, passed = right + 1, passed + ok
            else:
                wrong, flagged = wrong + 1, flagged + (not ok)
        out[split] = {"wrong": wrong, "wrong_flagged": round(flagged / max(1, wrong), 4),
                      "right": right, "right_passed": round(passed / max(1, right), 4)}
    return out


def answer_latency(cases: list[dict[str, Any]]) -> dict[str, float]:
    """ms per sentence when a whole answer is verified at once (how the turn uses it):
    each topic's cases joined into one multi-sentence answer over the topic's sources."""
    topics: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        topics[json.dumps(case["sources"], sort_keys=True)].append(case)
    per: list[float] = []
    for group in topics.values():
        answer = " ".join(answer_for(c) for c in group)
        t0 = time.perf_counter()
        report = verify_citations(answer, group[0]["sources"])
        per.append((time.perf_counter() - t0) * 1000 / max(1, len(report.sentences)))
    per.sort()
    return {"answers": len(per), "p50": round(per[len(per) // 2], 2),
            "p95": round(per[min(len(per) - 1, int(len(per) * 0.95))], 2)} if per else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", help="a .jsonl case file (default: both shipped files)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--split", default="test", help="split the --min-* bounds apply to (or 'all')")
    ap.add_argument("--min-precision", type=float)
    ap.add_argument("--min-recall", type=float)
    ap.add_argument("--threshold", type=float, help="override the calibrated threshold")
    args = ap.parse_args(argv)
    from memory.minilm import get_encoder

    get_encoder().encode(["warm up"])  # model load is not per-sentence latency
    cases = load_cases(*(args.data or ()))
    res = evaluate(cases, threshold=args.threshold)
    res["ms_per_sentence_in_answer"] = answer_latency(cases)
    if not args.data and BINDING.exists():
        res["binding"] = binding_rates(load_cases(BINDING))
    if args.json:
        print(json.dumps(res))
    else:
        for key in ("dev", "dev2", "test", "holdout", "all"):
            if key in res:
                print(f"{key:5s} precision {res[key]['precision']:.3f}  recall {res[key]['recall']:.3f}  "
                      f"(tp {res[key]['tp']}, fp {res[key]['fp']}, fn {res[key]['fn']})")
        print("per kind:", ", ".join(f"{k} {v:.2f}" for k, v in res["per_kind_accuracy"].items()))
        print(f"ms/sentence, one-sentence answers: p50 {res['ms_per_sentence']['p50']}  "
              f"p95 {res['ms_per_sentence']['p95']}")
        whole = res["ms_per_sentence_in_answer"]
        print(f"ms/sentence, whole answers ({whole['answers']}): p50 {whole['p50']}  p95 {whole['p95']}")
        for key, b in res.get("binding", {}).items():
            print(f"{key}: wrong bindings flagged {b['wrong_flagged']:.3f} ({b['wrong']}), "
                  f"right ones passed {b['right_passed']:.3f} ({b['right']})")
    split = res.get(args.split, res["all"])
    ok = ((args.min_precision is None or split["precision"] >= args.min_precision)
          and (args.min_recall is None or split["recall"] >= args.min_recall))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
