"""Does the embedded default (SmolLM2-135M) answer right? A fixed question set over sample
documents and facts stated in conversation, through the REAL ``Assistant`` with the REAL
local model, with extractive answers off (``LASTMILE_EXTRACTIVE_ANSWERS=off``: the model
answers alone, as before issue 13) and on (the default, ``auto``).

Each question has one criterion (see ``questions.json``): the reply contains a value,
one of several phrasings, refuses ("I don't find this in your documents"), or answers
(does not refuse: chit-chat and writing requests still reach the model). The facts are
stated first in their own session (the facts job extracts them), then every question is
asked in a fresh session. Slow: two passes of the local model (a few minutes on 2 cores).

    python benchmarks/local_answers.py [--data DIR] [--only on|off] [--min-accuracy 0.8] [--json] [-v]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant import Assistant, Settings

__all__ = ["DATA", "correct", "load", "main", "run"]

DATA = Path(__file__).resolve().parent / "data" / "local_answers"
#: How a reply says the documents or the user's own statements do not cover a question.
REFUSAL = re.compile(r"\b(?:I (?:don't|do not|can't|cannot|could not|couldn't) find|not (?:found|covered|"
                     r"mentioned) in your|(?:your|the) documents (?:don't|do not) (?:say|cover|mention))",
                     re.I)


def load(data: Path) -> dict[str, Any]:
    """The question set (``questions.json``) and the documents beside it."""
    spec = json.loads((data / "questions.json").read_text())
    spec["documents"] = sorted(p for p in data.iterdir() if p.suffix in {".md", ".txt", ".pdf", ".html"})
    return spec


def correct(item: dict[str, Any], reply: str) -> bool:
    """Whether ``reply`` meets the question's criterion."""
    text = " ".join(reply.split()).lower()
    refused = bool(REFUSAL.search(text))
    if item.get("refuses"):
        return refused
    if item.get("answers"):
        return not refused and bool(text.strip())
    if "contains" in item:
        return all(v.lower() in text for v in item["contains"])
    return any(v.lower() in text for v in item["any"])


def run(spec: dict[str, Any], mode: str, *, tokens: int = 96, verbose: bool = False) -> dict[str, Any]:
    """Every question through a fresh ``Assistant`` (its own data dir) in ``mode``."""
    data = Path(tempfile.mkdtemp(prefix=f"lastmile-answers-{mode}-"))
    cfg = Settings(data_dir=data, providers="local", max_reply_tokens=tokens, temperature=0.0,
                   index_turns=False, summarize_sessions=False, facts_enabled=True,
                   sample_corpus=False, cache_mode="off", extractive_answers=mode)
    rows = []
    from memory.corpus import Corpus
    from memory.db import open_engine
    from memory.vectors import open_chroma

    corpus = Corpus.from_settings(open_engine(cfg.resolved_database_url),
                                  open_chroma(cfg.chroma_path, cfg.chroma_url), cfg)
    corpus.ingest(spec["documents"], collection="bench", user_id="kari")
    with Assistant(cfg, documents=corpus) as bot:
        for n, fact in enumerate(spec.get("facts", [])):
            bot.chat(fact, session_id=f"facts-{n}", user_id="kari")
        bot.flush()
        started = time.perf_counter()
        for n, item in enumerate(spec["questions"]):
            reply = bot.chat(item["q"], session_id=f"q{n}", user_id="kari")
            ok = correct(item, reply.text)
            rows.append({"q": item["q"], "ok": ok, "reply": reply.text,
                         "citations": [c.source_id for c in reply.citations]})
            if verbose:
                print(f"[{mode}] {'OK ' if ok else 'BAD'} {item['q']}\n      {reply.text[:300]!r}")
        elapsed = time.perf_counter() - started
    n = len(rows)
    return {"mode": mode, "questions": n, "correct": sum(r["ok"] for r in rows),
            "accuracy": round(sum(r["ok"] for r in rows) / n, 3) if n else 0.0,
            "with_citation": sum(bool(r["citations"]) for r in rows),
            "seconds_per_question": round(elapsed / n, 2) if n else 0.0, "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder with questions.json and documents")
    ap.add_argument("--only", choices=("on", "off"), help="run one pass only")
    ap.add_argument("--tokens", type=int, default=96, help="max reply tokens")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every reply")
    ap.add_argument("--min-accuracy", type=float, default=0.0,
                    help="exit 1 when the pass with extractive answers on is below this share")
    args = ap.parse_args(argv)
    spec = load(args.data)
    modes = {"off": "off", "on": "auto"}
    results = {name: run(spec, mode, tokens=args.tokens, verbose=args.verbose)
               for name, mode in modes.items() if args.only in (None, name)}
    if args.json:
        print(json.dumps(results))
        return 0
    for name, res in results.items():
        print(f"local answers, extractive {name:3}: {res['correct']}/{res['questions']} correct "
              f"({res['accuracy']:.0%}), {res['with_citation']} with a citation, "
              f"{res['seconds_per_question']:.1f} s per question")
    on = results.get("on")
    return 1 if on is not None and on["accuracy"] < args.min_accuracy else 0


if __name__ == "__main__":
    raise SystemExit(main())
