"""Issue 12, failure 9: two replicas starting at once raced the migrations and the
sample-corpus ingest (a logged UniqueViolation). Both now run under a database-wide
lock (``memory.db.exclusive``); here two real processes start together on a fresh
PostgreSQL schema and one ``chroma run``, each migrating and ingesting the docs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from assistant.testing.cluster import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

START = textwrap.dedent('''
    import logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from pathlib import Path
    from assistant import Settings
    from memory.corpus import Corpus
    from memory.db import open_engine
    from memory.vectors import open_chroma
    settings = Settings(database_url=sys.argv[1], chroma_url=sys.argv[2], data_dir=sys.argv[3])
    engine = open_engine(settings.resolved_database_url)       # migrations
    corpus = Corpus.from_settings(engine, open_chroma(settings.chroma_path, settings.chroma_url), settings)
    # what `lastmile serve` does with the docs at start (sample_corpus), on a small shared set
    report = corpus.ingest(sorted(Path(sys.argv[4]).glob("*.md")), collection="lastmile-docs")
    print("started", report.summary().splitlines()[0], flush=True)
''')


def test_two_processes_starting_together_never_race_migrations_or_the_ingest(
        postgres_url: str, tmp_path: Path) -> None:
    schema = f"r_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}options=-csearch_path%3D{schema}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(PYTHONFAULTHANDLER="1", HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"doc{i}.md").write_text(f"# Doc {i}\n\n" + f"Policy {i} says the kettle boils at {i}. " * 40)
    try:
        with Cluster(url, tmp_path / "c") as cluster:
            chroma = cluster.start_chroma()
            procs = [subprocess.Popen([sys.executable, "-c", START, url, chroma, str(tmp_path / f"d{i}"),
                                       str(docs)],
                                      env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True) for i in range(2)]
            try:
                outs = [p.communicate(timeout=240)[0] for p in procs]
            finally:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
        for proc, out in zip(procs, outs, strict=True):
            assert proc.returncode == 0, out[-3000:]
            assert "started" in out, out[-3000:]
            for bad in ("UniqueViolation", "IntegrityError", "DuplicateTable", "Traceback"):
                assert bad not in out, out[-3000:]
        with admin.connect() as conn:
            conn.execute(text(f'SET search_path TO "{schema}"'))
            sources = conn.scalar(text("SELECT count(*) FROM sources"))
            heads = conn.scalar(text("SELECT count(*) FROM alembic_version"))
        assert sources == 4 and heads == 1
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
