"""Prompt tokens per turn stay flat as a conversation grows (issue 3: turn 600 <= 1.1 x turn 50).

Why: a context that grows with the conversation gets slower, dearer and then truncated
by the provider; one that sheds old turns without a summary or recall forgets. This
replays a deterministic, varied ``--turns``-turn conversation (``synthetic_turns``)
through the real ``Assistant`` — SQLite and embedded Chroma in a scratch dir, background
indexing, memory recall, rolling summary and fact jobs as configured — with the scripted
model at a realistic ``--window`` (2048 tokens; 256 of them reserved for the reply) and
prints the prompt tokens (as the model counted them) at turns 50/100/300/600, per block,
plus the pending-question check. Exit 1 when turn N exceeds ``--max-ratio`` x turn 50
or the pending question was ever missing from a prompt.

    python benchmarks/prompt_tokens.py [--turns 600] [--window 2048] [--max-ratio 1.1]
                                       [--report DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from assistant.replay import ReplayOptions, run_replay
from assistant.replay.inputs import load_script, synthetic_turns
from assistant.settings import Settings, quiet_third_parties

CHECKPOINTS = (50, 100, 300, 600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=600, help="user turns to replay")
    parser.add_argument("--window", type=int, default=2048, help="the scripted model's context window")
    parser.add_argument("--max-ratio", type=float, default=1.1, help="bound on turn N / turn 50")
    parser.add_argument("--flush-every", type=int, default=10, help="wait for background work every N turns")
    parser.add_argument("--report", type=Path, default=None, help="also write the replay report here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.turns < 50:
        parser.error("--turns must be at least 50 (turn 50 is the reference)")
    quiet_third_parties()
    with tempfile.TemporaryDirectory(prefix="lastmile-bench-") as scratch:
        conv = Path(scratch) / "synthetic.jsonl"
        conv.write_text("".join(json.dumps(r) + "\n" for r in synthetic_turns(args.turns)))
        settings = Settings(data_dir=Path(scratch) / "data", database_url=None, chroma_url=None)
        report = run_replay(load_script(conv), settings,
                            ReplayOptions(context_window=args.window, flush_every=args.flush_every,
                                          progress=not args.json))
        if args.report:
            from assistant.replay.report import write_report

            write_report(report, args.report)
    turns = report["turns"]
    at = {t: turns[t - 1] for t in (*CHECKPOINTS, len(turns)) if t <= len(turns)}
    last = len(turns)
    ratio = turns[-1]["prompt_tokens"] / turns[49]["prompt_tokens"]
    violations = len(report["pending_question"]["violations"])
    result = {"turns": last, "window": args.window, "duration_s": report["meta"]["duration_s"],
              "prompt_tokens": {str(t): r["prompt_tokens"] for t, r in at.items()},
              "blocks": {str(t): r["blocks"] for t, r in at.items()},
              "ratio_last_to_50": round(ratio, 4), "flatness": report["tokens"]["flatness"],
              "max_prompt_tokens": report["tokens"]["max"], "pending_violations": violations}
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        names = report["tokens"]["blocks"]
        print(f"{last} turns, scripted model, window {args.window}, {result['duration_s']} s")
        print(f"{'turn':>6} {'prompt':>7} " + " ".join(f"{n:>9}" for n in names))
        for t, r in at.items():
            print(f"{t:>6} {r['prompt_tokens']:>7} " + " ".join(f"{r['blocks'].get(n, 0):>9}" for n in names))
        print(f"turn {last} / turn 50 = {ratio:.3f} (bound {args.max_ratio}); "
              f"max {result['max_prompt_tokens']}; pending-question violations {violations}")
    if ratio > args.max_ratio or violations:
        print(f"FAIL: ratio {ratio:.3f} > {args.max_ratio} or {violations} violation(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
