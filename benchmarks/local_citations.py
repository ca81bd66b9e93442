"""How often does the local model cite, and how many of its answers end up with citations?

Why: the sources block asks for ``[n]`` markers, but SmolLM2-135M seldom writes them;
``guardrails.attribution`` fills in what a shown source supports. This measures both on
ten questions about the sample corpus, through the real ``Assistant`` path (the sample
corpus ingested as ``lastmile serve`` does, in a temporary data dir). Slow: it runs the
real local model (about a minute on 2 idle cores).

    python benchmarks/local_citations.py [--tokens 96] [--temperature 0.2] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from assistant import Assistant, Settings
from assistant.cli.ingest import sample_corpus
from guardrails.claims import parse_markers, split_sentences

__all__ = ["QUESTIONS", "main", "measure"]

QUESTIONS = ["How does lastmile fall back between providers?", "Where does lastmile store conversation history?",
             "What does the citation guard check?", "How do I ingest my own documents into lastmile?",
             "What is safe mode in lastmile?", "How does lastmile redact PII?", "What is the default local model?",
             "How are budgets and costs tracked?", "What does the review queue do?",
             "How does lastmile remember facts about a user?"]


def measure(tokens: int = 96, temperature: float = 0.2) -> dict[str, Any]:
    """Per-question raw markers (what the model wrote) and final citations (after checks)."""
    data = Path(tempfile.mkdtemp(prefix="lastmile-cite-"))
    cfg = Settings(data_dir=data, providers="local", max_reply_tokens=tokens, temperature=temperature,
                   index_turns=False, summarize_sessions=False, facts_enabled=False)
    rows = []
    with Assistant(cfg, documents=sample_corpus(cfg, Console(stderr=True))) as bot:
        for n, question in enumerate(QUESTIONS):
            stream = bot.stream(question, session_id=f"q{n}", user_id="bench")
            raw = "".join(stream)  # the model's own text, before the guards touch it
            reply = stream.reply
            shown = {str(i + 1) for i in range(len(reply.context.document_ids if reply and reply.context else []))}
            ids = [cid for s in split_sentences(raw) for cid in parse_markers(s)[1]]
            rows.append({"question": question, "markers": ids, "valid": [i for i in ids if i in shown],
                         "citations": [(c.source_id, c.verdict, c.origin) for c in (reply.citations if reply else ())]})
    n = len(rows)
    return {"questions": n, "answers_with_valid_marker": sum(bool(r["valid"]) for r in rows),
            "invalid_markers": sum(len(r["markers"]) - len(r["valid"]) for r in rows),
            "answers_with_citations": sum(bool(r["citations"]) for r in rows),
            "attributed": sum(c[2] == "attributed" for r in rows for c in r["citations"]), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=96, help="max reply tokens")
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    res = measure(args.tokens, args.temperature)
    if args.json:
        print(json.dumps(res))
        return 0
    n = res["questions"]
    print(f"answers with a valid [n] from the model: {res['answers_with_valid_marker']}/{n}; "
          f"invalid markers: {res['invalid_markers']}; answers with citations after checks: "
          f"{res['answers_with_citations']}/{n} ({res['attributed']} attributed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
