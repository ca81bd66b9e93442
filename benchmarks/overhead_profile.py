"""Where a served turn's CPU goes: ``Assistant.chat`` under cProfile, every feature on.

The turn path of ``lastmile bench overhead`` without HTTP: the ``openai`` provider at a
loopback echo backend (``assistant.bench.overhead_echo``, its own process), a scratch
PostgreSQL database, the sample corpus and a small corpus of the user's own. Prints
the turn's p50 and the functions with the most cumulative and own time, so an
optimisation can be checked in a minute rather than a full benchmark run.

    python benchmarks/overhead_profile.py [--turns 60] [--top 40] [--sort cumulative]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the served processes run

from assistant.bench.overhead_setup import (
    Stack,
    drop_database,
    scratch_database,
    write_corpus,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    parser.add_argument("--save", type=Path, default=None, help="also write the pstats file here")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    from rich.console import Console

    from assistant.cli.ingest import sample_corpus
    from assistant.orchestrator import Assistant
    from assistant.settings import Settings

    url = scratch_database(args.postgres_url)
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), url)
        try:
            backend = stack.start_echo()
            os.environ.update({"OPENAI_BASE_URL": backend, "OPENAI_API_KEY": "sk-bench"})
            settings = Settings(data_dir=Path(tmp) / "data", database_url=url,
                                providers="openai:gpt-4o-mini", sample_corpus=True)
            corpus = sample_corpus(settings, Console(stderr=True))
            if corpus is not None:
                corpus.ingest(write_corpus(Path(tmp) / "docs", 10), collection="notices",
                              user_id="prof")
            with Assistant(settings, documents=corpus) as bot:
                for i in range(5):  # warm: weights, statement caches, first-use loads
                    bot.chat(f"warm-up {i}: what is the fee in notice {i}?", session_id="w",
                             user_id="prof")
                bot.flush()
                profile = cProfile.Profile()
                times = []
                for i in range(args.turns):
                    started = time.perf_counter()
                    profile.enable()
                    reply = bot.chat(f"Question {i}: what is the fee and the opening time in "
                                     f"notice {i % 10}?", session_id=f"s{i % 5}", user_id="prof")
                    profile.disable()
                    times.append((time.perf_counter() - started) * 1000)
                    assert reply.status == "ok", reply.error
        finally:
            stack.close()
            drop_database(args.postgres_url, url)
    print(f"{args.turns} turns: p50 {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms (load average {os.getloadavg()[0]:.1f})")
    if args.save is not None:
        profile.dump_stats(args.save)
    pstats.Stats(profile).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
