"""Writing a replay's report: ``report.json``, ``report.md`` and PNG charts.

Everything is written into a temporary sibling directory and renamed into place at the
end, so a crash (or a full disk) never leaves a half-written report where a tester
would read it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError

__all__ = ["PLOTS", "check_out_dir", "render_markdown", "write_report"]

PLOTS = ("tokens.png", "latency.png", "memory.png")


def check_out_dir(out: Path) -> None:
    """Refuse an existing non-empty directory before the replay starts: nothing is lost."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigurationError(f"{out} already exists and is not empty; choose another --out")


def _plot_tokens(report: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    turns = report["turns"]
    xs = [t["turn"] for t in turns]
    names = [b for b in report["tokens"]["blocks"] if report["tokens"]["turns_using"][b]]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    if xs and names:
        ax.stackplot(xs, *[[t["blocks"].get(n, 0) for t in turns] for n in names], labels=names, alpha=0.8)
        ax.plot(xs, [t["prompt_tokens"] or 0 for t in turns], color="black", lw=0.8,
                label="prompt (provider)")
        ax.axhline(report["meta"]["context_window"], ls="--", color="grey", lw=0.8, label="context window")
    ax.set(xlabel="turn", ylabel="prompt tokens", title="Prompt tokens per turn, by block")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_latency(report: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    stages = [s for s, v in report["latency_ms"].items() if v]
    data = [[t["stages_ms"][s] for t in report["turns"] if s in t["stages_ms"]] for s in stages]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    if stages:
        data = [[max(v, 1e-3) for v in values] for values in data]  # log scale: no zeros
        ax.boxplot(data, tick_labels=stages, showfliers=True, flierprops={"markersize": 2})
        ax.set_yscale("log")
    ax.set(ylabel="ms per turn", title="Latency per stage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_memory(report: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    snaps = report["memory"]["snapshots"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = [s["turn"] for s in snaps]
    ax.plot(xs, [s["counts"]["messages"]["indexed"] for s in snaps], label="messages indexed")
    for name in sorted({n for s in snaps for n in s["counts"]} - {"messages"}):
        ys = [s["counts"].get(name, {}).get("rows", 0) for s in snaps]
        if any(ys):
            ax.plot(xs, ys, label=f"{name} rows")
    ax.set(xlabel="turn", ylabel="rows", title="Memory operations (at each flush)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def render_markdown(report: dict) -> str:
    meta, tokens = report["meta"], report["tokens"]
    pending = report["pending_question"]
    lines = [f"# Replay report: {Path(meta['source']).name}", "",
             f"{meta['turns']} turns ({meta['format']}"
             + (f", conversation {meta['conversation']}" if meta.get("conversation") else "")
             + f", {meta['sessions']} session(s)) with `{meta['model']}`, context window "
             f"{meta['context_window']} tokens, user `{meta['user_id']}`; {meta['duration_s']} s. "
             f"Rejected by guards: {len(meta['rejected'])}.", "",
             "## Prompt tokens", "", "![prompt tokens](tokens.png)", ""]
    flat = tokens["flatness"]
    lines += _table(["turn", *tokens["at_turn"].keys()], [["prompt tokens", *tokens["at_turn"].values()]])
    lines += ["", (f"Flatness: mean {flat['late_mean']} over turns {flat['late_turns'][0]}–"
                   f"{flat['late_turns'][1]} vs {flat['early_mean']} over turns {flat['early_turns'][0]}–"
                   f"{flat['early_turns'][1]} (ratio **{flat['ratio']}**; meaningful once the window is full "
                   f"by turn {flat['early_turns'][0]}); max {tokens['max']}."), ""]
    lines += _table(["block", "mean tokens", "turns using it"],
                    [[b, tokens["mean_by_block"][b], tokens["turns_using"][b]] for b in tokens["blocks"]])
    lines += ["", "## Pending question", "",
              (f"Checked on {pending['checked']} turns: **{len(pending['violations'])} violation(s)** "
               "(the pending user message must be in the prompt's `message_ids` and be its last "
               "message)."), ""]
    lines += [f"- turn {v['turn']} ({v['ref']}): {'; '.join(v['problems'])}"
              for v in pending["violations"][:20]]
    lines += ["## Latency per stage (ms)", "", "![latency](latency.png)", ""]
    lines += _table(["stage", "p50", "p95", "max", "mean"],
                    [[s, v["p50"], v["p95"], v["max"], v["mean"]]
                     for s, v in report["latency_ms"].items() if v])
    lines += ["", "## Memory operations", "", "![memory](memory.png)", ""]
    rows, empty = [], []
    for name, entry in report["memory"]["tables"].items():
        if not entry["rows"]:
            empty.append(name)
            continue
        detail = ", ".join(f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items())
                           for k, v in entry.items() if isinstance(v, dict) and v)
        rows.append([name, entry["rows"], entry.get("indexed", ""), detail])
    lines += _table(["table", "rows (this user)", "indexed", "by status/kind"], rows)
    if empty:
        lines += ["", f"No rows for this user in: {', '.join(empty)}."]
    probes = report.get("probes")
    lines += ["", "## Probes: evidence recall in the memory block", ""]
    if probes:
        lines += [(f"{probes['asked']} probes asked, each in a fresh session ({probes['skipped']} "
                   "skipped: evidence beyond the replayed turns, or rejected)."), ""]
        lines += _table(["category", "recall"], [[c, f"{r:.3f}"] for c, r in probes["recall"].items()])
    else:
        lines.append("No probes given (`--probes FILE`, or a LoCoMo file's QA).")
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path) -> Path:
    """Write JSON, Markdown and charts to ``out`` atomically (temp dir, then rename)."""
    import matplotlib

    matplotlib.use("Agg")
    out = out.resolve()
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        (tmp / "report.md").write_text(render_markdown(report), encoding="utf-8")
        _plot_tokens(report, tmp / PLOTS[0])
        _plot_latency(report, tmp / PLOTS[1])
        _plot_memory(report, tmp / PLOTS[2])
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
