"""LoCoMo retrieval benchmark: turn-level evidence recall@k of the hybrid memory retriever.

Ingests each conversation under its own user into a scratch Chroma store, asks every
category 1-4 question and scores the fraction of its evidence turns in the top k (see
``assistant.bench.locomo_eval`` for the metric, evidence hygiene and token counting).

    lastmile bench locomo --data FILE [--k 5,10] [--json] [--baseline] [--chroma DIR]
                          [--by-conversation] [--loco]
    python benchmarks/locomo.py ...   (the same)

``--json`` prints one object: {"recall": {"5": {"1".."4", "all"}, ...},
"memory_tokens": {"mean", "p95"}, "latency_ms": {"p50", "p95"}}; with ``--baseline`` it
also carries "baseline_bm25" and "baseline_dense" (same shape) for the single retrievers,
with ``--by-conversation`` a "by_conversation" recall per conversation, and with
``--loco`` a "loco" leave-one-conversation-out check over ``design_grid`` (is the
default design's figure an artefact of choosing it on these conversations?).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from assistant.bench.locomo_eval import (
    LocomoFormatError,
    evaluate,
    ingest,
    leave_one_out,
    load_locomo,
    scored_questions,
)
from assistant.errors import ConfigurationError
from memory.retrieval import HybridRetriever, RetrievalConfig, with_weights
from memory.vectors import open_chroma

__all__ = ["design_grid", "main", "run", "through_assistant"]


def design_grid(config: RetrievalConfig) -> dict[str, RetrievalConfig]:
    """The retrieval designs compared by ``--loco``: fusion x windowed BM25 x skipping
    shown turns, plus each path alone (all with +-1 neighbour turns, equal weights)."""
    grid = {f"{fusion}{' +window' if window else ''}{' +skip' if skip else ''}":
            replace(config, fusion=fusion, lexical_window=window, skip_shown=skip, neighbours=1)
            for fusion in ("zscore", "rrf") for window in (True, False) for skip in (True, False)}
    grid["bm25 +window +skip"] = with_weights(grid["zscore +window +skip"], dense=0, lexical=1)
    grid["dense +skip"] = with_weights(grid["zscore +window +skip"], dense=1, lexical=0)
    return grid


def run(data: Path, ks: list[int], *, baseline: bool = False, chroma_dir: Path | None = None,
        show_progress: bool = True, by_conversation: bool = False, loco: bool = False) -> dict:
    conversations = load_locomo(data)
    with tempfile.TemporaryDirectory(prefix="locomo-chroma-") as scratch:
        retriever = HybridRetriever(open_chroma(chroma_dir or Path(scratch)), collection="locomo")
        for conv in tqdm(conversations, desc="ingest", unit="conv", disable=not show_progress,
                         file=sys.stderr):
            ingest(retriever, conv)
        configs = {"hybrid": retriever.config}
        if baseline:
            configs["baseline_bm25"] = with_weights(retriever.config, dense=0, lexical=1, neighbours=0)
            configs["baseline_dense"] = with_weights(retriever.config, dense=1, lexical=0, neighbours=0)
        n = scored_questions(conversations)
        results = {}
        for name, config in configs.items():
            with tqdm(total=n, desc=name, unit="q", disable=not show_progress, file=sys.stderr) as bar:
                results[name] = evaluate(retriever, conversations, ks=ks, config=config, ingested=True,
                                         progress=bar.update, by_conversation=by_conversation)
        if loco:
            grid = {}
            for name, config in tqdm(design_grid(retriever.config).items(), desc="loco designs",
                                     disable=not show_progress, file=sys.stderr):
                grid[name] = evaluate(retriever, conversations, ks=ks, config=config, ingested=True,
                                      by_conversation=True)["by_conversation"]
            results["loco"] = leave_one_out(grid, max(ks))
            results["loco"]["designs"] = grid
    out = results.pop("hybrid")
    out.update(results)
    return out


def through_assistant(data: Path, *, context_window: int = 8192,
                      conversations: list[str] | None = None, show_progress: bool = False) -> dict:
    """The product-path figure (issue 17): each conversation replayed through a real
    ``Assistant`` (scripted model, default settings, scratch SQLite + Chroma) with its
    category 1-4 questions as probes, each in a fresh session; recall is the share of a
    question's evidence turns among the memory block's message ids of the real prompt,
    pooled over questions. The same code as ``lastmile replay`` (``run_replay``)."""
    from assistant.cli.common import load_settings
    from assistant.replay import ReplayOptions, run_replay
    from assistant.replay.inputs import load_script

    ids = conversations or [c.sample_id for c in load_locomo(data)]
    items: list[dict] = []
    by_conv: dict[str, dict] = {}
    tokens: list[float] = []
    skipped = 0
    for sample in ids:
        script = load_script(data, conversation=sample)
        with tempfile.TemporaryDirectory(prefix="locomo-product-") as scratch:
            settings = load_settings().model_copy(update={
                "data_dir": Path(scratch), "database_url": None, "chroma_url": None})
            report = run_replay(script, settings, ReplayOptions(
                context_window=context_window, progress=show_progress), probes=script.probes)
        probes = report["probes"]
        items += probes["items"]
        skipped += probes["skipped"]
        tokens += [i["memory_tokens"] for i in probes["items"]]
        by_conv[sample] = {"n": probes["asked"], "recall": probes["recall"]["all"]}
    cats = sorted({i["category"] for i in items})

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    recall = {c: mean([i["recall"] for i in items if i["category"] == c]) for c in cats}
    recall["all"] = mean([i["recall"] for i in items])
    return {"context_window": context_window, "asked": len(items), "skipped": skipped,
            "recall": recall, "memory_tokens": {"mean": mean(tokens), "max": max(tokens, default=0)},
            "by_conversation": by_conv}


def _table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = {"hybrid": result, **{k.removeprefix("baseline_"): v for k, v in result.items()
                                 if k.startswith("baseline_")}}
    table = Table(title="LoCoMo evidence recall (categories 1-4; fraction of evidence turns in top k)")
    for col in ("retriever", "k", "1 multi-hop", "2 temporal", "3 open-domain", "4 single-hop", "all"):
        table.add_column(col, justify="left" if col == "retriever" else "right")
    for name, res in rows.items():
        for k, rec in res["recall"].items():
            table.add_row(name, k, *(f"{rec[c]:.3f}" for c in ("1", "2", "3", "4", "all")))
    console = Console()
    console.print(table)
    for name, res in rows.items():
        console.print(f"{name}: memory block tokens mean {res['memory_tokens']['mean']:.0f}, "
                      f"p95 {res['memory_tokens']['p95']:.0f}; search latency p50 "
                      f"{res['latency_ms']['p50']:.1f} ms, p95 {res['latency_ms']['p95']:.1f} ms")
        for conv, row in res.get("by_conversation", {}).items():
            console.print(f"  {conv} ({row['n']} questions): " +
                          ", ".join(f"R@{k} {v:.3f}" for k, v in row["recall"].items()))
    if "loco" in result:
        loco = result["loco"]
        for fold in loco["folds"]:
            console.print(f"held out {fold['held_out']}: picked {fold['picked']!r} "
                          f"(R@{loco['k']} {fold['train']:.3f} on the others) -> {fold['recall']:.3f}")
        console.print(f"leave-one-conversation-out R@{loco['k']} {loco['recall']:.3f}; in-sample best "
                      f"{loco['in_sample_best']!r} {loco['in_sample_recall']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lastmile bench locomo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="LoCoMo-format JSON file")
    parser.add_argument("--k", default="5,10", help="comma-separated cut-offs (default 5,10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--baseline", action="store_true", help="also score BM25-only and dense-only")
    parser.add_argument("--chroma", type=Path, help="Chroma directory (default: a temporary one)")
    parser.add_argument("--by-conversation", action="store_true",
                        help="add recall per conversation (key by_conversation)")
    parser.add_argument("--loco", action="store_true",
                        help="leave-one-conversation-out check over a grid of designs (key loco)")
    parser.add_argument("--through-assistant", action="store_true",
                        help="also replay each conversation through the real Assistant and report "
                             "the product-path probe recall beside the retriever's (key product)")
    parser.add_argument("--context-window", type=int, default=8192,
                        help="the scripted model's window for --through-assistant (default 8192)")
    parser.add_argument("--conversation", action="append", default=None,
                        help="only this sample_id (repeatable; default all)")
    args = parser.parse_args(argv)
    try:
        ks = sorted({int(k) for k in args.k.split(",") if k.strip()})
        if not ks or min(ks) < 1:
            raise ValueError
    except ValueError:
        parser.error(f"--k must be positive integers separated by commas, got {args.k!r}")
    try:
        data = args.data
        if args.conversation:
            data = _subset(args.data, args.conversation)
        result = run(data, ks, baseline=args.baseline, chroma_dir=args.chroma,
                     by_conversation=args.by_conversation, loco=args.loco)
        if args.through_assistant:
            product = through_assistant(data, context_window=args.context_window)
            product["retriever_r10"] = result["recall"].get("10", {}).get("all")
            if product["retriever_r10"] is not None:
                product["gap"] = product["retriever_r10"] - product["recall"]["all"]
            result["product"] = product
    except (OSError, LocomoFormatError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        _table(result)
        if "product" in result:
            p = result["product"]
            cats = " / ".join(f"{p['recall'].get(c, 0):.3f}" for c in ("1", "2", "3", "4"))
            print(f"product path (replay through the Assistant, {p['context_window']}-token window): "
                  f"probe recall {p['recall']['all']:.3f} ({cats}), {p['asked']} probes, "
                  f"{p['skipped']} skipped, memory block mean {p['memory_tokens']['mean']:.0f} tokens; "
                  f"retriever R@10 {p.get('retriever_r10') or 0:.3f}")
    return 0


def _subset(data: Path, samples: list[str]) -> Path:
    """A temporary copy of ``data`` holding only these conversations."""
    raw = json.loads(Path(data).read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise LocomoFormatError("top level: expected a list of conversations")
    kept = [c for c in raw if isinstance(c, dict) and str(c.get("sample_id")) in samples]
    missing = set(samples) - {str(c.get("sample_id")) for c in kept}
    if missing:
        raise LocomoFormatError(f"no conversation with sample_id {sorted(missing)[0]!r}")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump(kept, handle)
    return Path(handle.name)


if __name__ == "__main__":
    raise SystemExit(main())
