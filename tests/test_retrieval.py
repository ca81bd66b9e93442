"""Hybrid memory retrieval and the LoCoMo evaluation, on real Chroma and real MiniLM."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from memory.dense import QueryEmbeddingCache
from memory.lexical import LexicalIndex, tokenize
from assistant.bench.locomo_eval import LocomoFormatError, evaluate, load_locomo
from memory.memblock import approx_tokens, render_block
from memory.minilm import get_encoder
from memory.retrieval import HybridRetriever, MemoryItem, RetrievalConfig, is_temporal
from memory.vectors import open_chroma

TEXTS = [
    "I adopted a kitten last week and named her Pixel",
    "My sister Maria moved to Lisbon in the spring",
    "The quarterly budget review for Zephyrine Logistics is on Thursday",
    "I cooked a big pot of pasta for dinner",
    "It rained all weekend so we stayed inside",
    "I started learning the guitar with online lessons",
    "My car needs new tires before the road trip",
    "We watched a documentary about deep sea creatures",
    "My doctor told me to sleep more and drink water",
    "The neighbours' dog barks every morning at six",
]
MAY = datetime(2023, 5, 8, 13, 56)
SINGLE = RetrievalConfig(neighbours=0)
LEXICAL = replace(SINGLE, dense_weight=0)
DENSE = replace(SINGLE, lexical_weight=0)


def _items(prefix: str, texts: list[str], session: str = "s1", when: datetime | None = MAY) -> list[MemoryItem]:
    return [MemoryItem(f"{prefix}{i}", t, session_id=session, speaker="Ann", timestamp=when, seq=i)
            for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> HybridRetriever:
    r = HybridRetriever(open_chroma(tmp_path_factory.mktemp("chroma")), collection="memories")
    r.add("ann", _items("a", TEXTS))
    r.add("ben", _items("b", TEXTS))  # the very same words, another user
    r.add("ben", [MemoryItem(f"b-extra{i}", f"Zephyrine Logistics budget review moved to Friday{tail}",
                             session_id="s9", seq=i)
                  for i, tail in enumerate(("", " morning", " afternoon", " at noon"))])
    return r


def _top1(r: HybridRetriever, config: RetrievalConfig, cases: dict[str, str]) -> int:
    return sum(bool(h := r.search("ann", q, k=1, config=config)) and h[0].item.source_id == want
               for q, want in cases.items())


def test_hybrid_beats_or_equals_each_single_retriever(retriever: HybridRetriever) -> None:
    cases = {
        "what instrument am I studying": "a5",  # paraphrase: no shared word, BM25 finds nothing
        "which family member lives abroad?": "a1",  # paraphrase again
        "Zephyrine": "a2",  # a rare name: MiniLM ranks the dinner turn first
    }
    lexical, dense, hybrid = (_top1(retriever, c, cases) for c in (LEXICAL, DENSE, SINGLE))
    assert lexical < len(cases) and dense < len(cases)  # each single retriever misses one
    assert hybrid >= max(lexical, dense)
    assert hybrid == len(cases)


@pytest.mark.parametrize("config", [SINGLE, LEXICAL, DENSE, RetrievalConfig()],
                         ids=["hybrid", "lexical", "dense", "hybrid+neighbours"])
def test_a_query_never_returns_another_users_items(retriever: HybridRetriever,
                                                   config: RetrievalConfig) -> None:
    for query in ("Zephyrine Logistics budget review", "kitten Pixel", "sister in Lisbon"):
        hits = retriever.search("ann", query, k=50, config=config)
        assert hits, query
        shown = {sid for h in hits for sid in h.source_ids}
        assert shown <= {f"a{i}" for i in range(len(TEXTS))}, shown
    assert retriever.search("nobody", "Zephyrine", k=5, config=config) == []
    assert retriever.lexical.search("ann", "friday", 10) == []  # only ben said "Friday"
    assert len(retriever.lexical.search("ben", "friday", 10)) == 4


def test_the_user_filter_is_applied_inside_chroma_not_after_it(retriever: HybridRetriever) -> None:
    # Ben's four turns are the nearest to this query; were Chroma asked without the user
    # filter, the 3 candidates would all be his and Ann would get nothing.
    hits = retriever.search("ann", "Zephyrine Logistics budget review moved to Friday", k=3,
                            config=replace(DENSE, candidates=3))
    assert len(hits) == 3 and all(h.item.source_id.startswith("a") for h in hits)


def test_items_survive_a_new_process_and_upserts_are_idempotent(tmp_path: Path) -> None:
    r = HybridRetriever(open_chroma(tmp_path / "c"), collection="mem")
    r.add("ann", _items("a", TEXTS[:3]))
    r.add("ann", _items("a", TEXTS[:3]))
    reopened = HybridRetriever(open_chroma(tmp_path / "c"), collection="mem")
    assert reopened.count("ann") == 3 and reopened.count("ben") == 0
    hit = reopened.search("ann", "Zephyrine", k=1, config=LEXICAL)[0]  # BM25 rebuilt from Chroma
    assert hit.item.source_id == "a2" and hit.date == MAY and hit.item.seq == 2


def test_neighbour_expansion_brings_adjacent_turns_of_the_same_session(retriever: HybridRetriever) -> None:
    turn_bm25 = RetrievalConfig(neighbours=1, lexical_window=False)  # windows tie on "Zephyrine"
    hit = retriever.search("ann", "Zephyrine", k=1, config=turn_bm25)[0]
    assert hit.item.source_id == "a2"
    assert hit.source_ids == ["a1", "a2", "a3"]  # conversation order, same session only
    two = retriever.search("ann", "Zephyrine", k=1, config=replace(turn_bm25, neighbours=2))[0]
    assert two.source_ids == ["a0", "a1", "a2", "a3", "a4"]
    assert "a2" in retriever.search("ann", "Zephyrine", k=1)[0].source_ids  # default: windowed
    assert retriever.search("ann", "Zephyrine", k=1, config=SINGLE)[0].context == ()
    assert [i.source_id for i in retriever.neighbours("ann", "a0")] == ["a1"]  # session start
    # A turn is shown once: never repeated as another hit's context, in either mode.
    for config in (RetrievalConfig(), RetrievalConfig(skip_shown=False)):
        hits = retriever.search("ann", "kitten Pixel sister Lisbon", k=4, config=config)
        shown = [sid for h in hits for sid in h.source_ids]
        assert len(hits) == 4 and len(shown) == len(set(shown))


def test_skip_shown_makes_the_k_hits_show_k_distinct_windows(retriever: HybridRetriever) -> None:
    # Ten turns in one session: without skipping, the top hits crowd around the best one
    # and repeat little; with it, no hit is a turn already shown as context.
    plain = retriever.search("ann", "kitten sister budget pasta", k=3, config=RetrievalConfig(skip_shown=False))
    spread = retriever.search("ann", "kitten sister budget pasta", k=3)
    assert len(spread) == 3
    contexts = [c.source_id for h in spread for c in h.context]
    assert not {h.item.source_id for h in spread} & set(contexts)
    assert len({s for h in spread for s in h.source_ids}) >= len({s for h in plain for s in h.source_ids})


def test_windowed_bm25_finds_a_reply_through_the_turn_it_answers(tmp_path: Path) -> None:
    r = HybridRetriever(open_chroma(tmp_path / "c"), collection="mem")
    turns = ["Did you finally go to the pottery workshop in Montclair?", "Yes! Last Saturday, it was great.",
             "I am repainting my kitchen this week.", "Nice, which colour?", "A pale sage green."]
    r.add("ann", _items("t", turns))
    lexical = replace(RetrievalConfig(), dense_weight=0)
    plain = [sid for sid, _ in r.lexical.search("ann", "Montclair pottery workshop", 10)]
    assert plain == ["t0"]  # one turn has the words
    windowed = [sid for sid, _ in r.lexical.search("ann", "Montclair pottery workshop", 10, windowed=True)]
    assert set(windowed) == {"t0", "t1"}  # the reply's window holds the question it answers
    assert "t2" not in windowed
    hits = r.search("ann", "When did Ann go to the Montclair pottery workshop?", k=1, config=lexical)
    assert {"t0", "t1"} <= set(hits[0].source_ids)
    r.add("ann", _items("t", ["Montclair again next month!"] * 6)[5:])  # t5 joins the session
    assert "t4" in [sid for sid, _ in r.lexical.search("ann", "Montclair", 10, windowed=True)]  # t4's window grew


def test_zscore_fusion_keeps_a_path_with_no_signal_out_and_rrf_stays_available(
        retriever: HybridRetriever) -> None:
    # No query word occurs in Ann's memories: BM25 scores are all 0 and add nothing, so
    # the fused ranking is the dense ranking.
    dense = [h.item.source_id for h in retriever.search("ann", "what instrument am I studying", k=5, config=DENSE)]
    fused = [h.item.source_id for h in retriever.search("ann", "what instrument am I studying", k=5, config=SINGLE)]
    assert fused == dense
    rrf = retriever.search("ann", "Zephyrine budget", k=3, config=replace(SINGLE, fusion="rrf"))
    assert rrf[0].item.source_id == "a2" and rrf[0].score == pytest.approx(2 / 61, rel=0.05)
    with pytest.raises(ValueError, match="unknown fusion"):
        retriever.search("ann", "Zephyrine", config=replace(SINGLE, fusion="max"))


def test_memory_block_fits_its_budget_and_names_source_and_date(retriever: HybridRetriever) -> None:
    def words(text: str) -> int:
        return len(text.split())

    full = retriever.memory_block("ann", "Zephyrine budget", k=5, token_budget=10_000,
                                  count_tokens=words, config=SINGLE)
    assert "[a2 | 8 May 2023, 1:56 pm] The quarterly budget review for Zephyrine" in full
    assert len(full.splitlines()) == 6  # header + 5 items
    small = retriever.memory_block("ann", "Zephyrine budget", k=5, token_budget=40,
                                   count_tokens=words, config=SINGLE)
    assert words(small) <= 40 and "a2 |" in small  # the best item stays...
    assert len(small.splitlines()) > 1 and len(small.splitlines()) < len(full.splitlines())  # ...the lowest ones went
    assert full.startswith(small)  # a prefix of the ranking survives
    assert retriever.memory_block("ann", "Zephyrine", k=5, token_budget=5, count_tokens=words) == ""
    default = retriever.memory_block("ann", "Zephyrine budget", k=10, token_budget=120)
    assert 0 < approx_tokens(default) <= 120


def test_context_lines_said_the_same_day_do_not_repeat_the_date() -> None:
    from memory.retrieval import MemoryHit

    first, same = datetime(2023, 5, 8, 13, 56), datetime(2023, 5, 8, 14, 10)
    hit = MemoryHit(MemoryItem("D1:2", "Bob: yes, Friday", seq=1, timestamp=same), 1.0,
                    context=(MemoryItem("D1:1", "Ann: did you go?", seq=0, timestamp=first),
                             MemoryItem("D1:3", "Ann: great", seq=2, timestamp=datetime(2023, 5, 9, 9, 0))))
    lines = render_block([hit], token_budget=1000).splitlines()
    assert lines[1] == "- [D1:1 | 8 May 2023, 1:56 pm] Ann: did you go?"  # first line: full date
    assert lines[2] == "  [D1:2 | same day] Bob: yes, Friday"
    assert lines[3] == "  [D1:3 | 9 May 2023, 9:00 am] Ann: great"  # another day: dated in full


def test_when_questions_put_dated_memories_first_and_show_dates(tmp_path: Path) -> None:
    r = HybridRetriever(open_chroma(tmp_path / "c"), collection="mem")
    r.add("ann", [MemoryItem("fact-1", "Ann adopted a kitten called Pixel", kind="fact")])  # undated
    r.add("ann", _items("t", ["I adopted a kitten called Pixel yesterday"], when=datetime(2023, 6, 2, 9, 5)))
    r.add("ann", _items("u", ["Pixel the kitten knocked over my plant"], session="s2",
                        when=datetime(2023, 3, 1, 20, 0)))
    assert is_temporal("When did Ann adopt the kitten?") and not is_temporal("What is Ann's cat called?")
    hits = r.search("ann", "When did Ann adopt the kitten Pixel?", k=3, config=SINGLE)
    assert hits[-1].item.source_id == "fact-1" and all(h.date for h in hits[:2])
    block = r.memory_block("ann", "When did Ann adopt the kitten Pixel?", k=3, config=SINGLE)
    lines = block.splitlines()
    assert "read relative times" in lines[1]
    assert lines[2].startswith("- [u0 | 1 March 2023, 8:00 pm]")  # oldest first for "when"
    assert lines[3].startswith("- [t0 | 2 June 2023, 9:05 am]")
    assert lines[4].startswith("- [fact-1 | undated]")



# -- in-memory dense path ----------------------------------------------------------------

DENSE_QUERIES = ("what instrument am I studying", "which family member lives abroad?", "pets",
                 "Zephyrine Logistics budget review moved to Friday", "weather", "health advice")


def test_in_memory_dense_ranking_matches_chromas(retriever: HybridRetriever) -> None:
    for user, n in (("ann", len(TEXTS)), ("ben", len(TEXTS) + 4), ("ann", 3)):
        for query in DENSE_QUERIES:
            fast = retriever._dense(user, query, n)
            assert fast == retriever._dense(user, query, n, via_chroma=True), (user, query)
            assert len(fast) == n


def test_dense_matrix_is_per_user(tmp_path: Path) -> None:
    r = HybridRetriever(open_chroma(tmp_path / "c"), collection="mem", embed_context=0)
    r.add("ann", [MemoryItem("m1", "I adopted a kitten named Pixel")])  # same id, other words
    r.add("ben", [MemoryItem("m1", "The quarterly budget review is on Thursday"),
                  MemoryItem("m2", "Budget meeting moved to Friday")])
    assert r._dense("ann", "budget review", 10) == ["m1"]  # loads Ann's matrix: one row
    [(sid, score)] = r.dense.search("ann", r.query_cache.get("budget review", get_encoder().encode), 10)
    assert sid == "m1" and score < 0.5  # Ann's own kitten vector, not Ben's budget one
    assert r._dense("ben", "budget review", 10) == ["m1", "m2"]
    assert r._dense("nobody", "budget review", 10) == []
    hits = r.search("ann", "budget review Friday", k=10, config=DENSE)
    assert [h.item.text for h in hits] == ["I adopted a kitten named Pixel"]


def test_dense_matrix_loads_lazily_appends_on_add_and_reloads_on_refresh(tmp_path: Path) -> None:
    r = HybridRetriever(open_chroma(tmp_path / "c"), collection="mem")
    r.add("ann", _items("a", TEXTS[:3]))
    assert r.dense.loaded("ann")  # first use loads items and vectors in one read (issue 12)
    assert r.search("ann", "kitten", k=1, config=DENSE)[0].item.source_id == "a0"
    assert r.dense.loaded("ann")
    r.add("ann", [MemoryItem("new", "I bought a saxophone yesterday")])  # appended in memory
    assert r.search("ann", "musical instrument purchase", k=1, config=DENSE)[0].item.source_id == "new"
    r.add("ann", [MemoryItem("new", "I sold my saxophone to a friend")])  # upsert replaces the row
    assert r._dense("ann", "sold to a friend", 10).count("new") == 1
    other = HybridRetriever(open_chroma(tmp_path / "c"), collection="mem")  # another process writes
    other.add("ann", [MemoryItem("ext", "The volcano erupted near our hotel")])
    assert "ext" not in r._dense("ann", "volcano eruption", 10)
    r.refresh("ann")
    assert not r.dense.loaded("ann")
    assert r.search("ann", "volcano eruption", k=1, config=DENSE)[0].item.source_id == "ext"
    assert r._dense("ann", "volcano eruption", 5) == r._dense("ann", "volcano eruption", 5, via_chroma=True)


def test_repeated_queries_are_embedded_once(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return get_encoder().encode(texts)

    cache = QueryEmbeddingCache(maxsize=2)
    first = cache.get("kitten", encode)
    assert np.array_equal(cache.get("kitten", encode), first) and calls == [["kitten"]]
    with pytest.raises(ValueError):
        first[0] = 1.0  # cached vectors are read-only
    cache.get("dog", encode)
    cache.get("kitten", encode)  # refreshes "kitten": "dog" is now the oldest
    cache.get("cat", encode)
    assert len(cache) == 2 and len(calls) == 3
    cache.get("dog", encode)  # evicted: embedded again
    assert len(calls) == 4
    with ThreadPoolExecutor(4) as pool:
        vectors = list(pool.map(lambda q: cache.get(q, encode), ["a", "b", "a", "b"] * 8))
    assert len(cache) == 2 and all(v.shape == (384,) for v in vectors)
    r = HybridRetriever(open_chroma(tmp_path / "c"), collection="mem")
    r.add("ann", _items("a", TEXTS[:3]))
    r.search("ann", "Zephyrine budget", k=2)
    misses = r.query_cache.misses
    r.search("ann", "Zephyrine budget", k=2)
    assert r.query_cache.misses == misses and r.query_cache.hits >= 1


def test_lexical_tokens_drop_question_words_and_stem() -> None:
    assert tokenize("When did Caroline go to the LGBTQ support groups?") == \
        ["carolin", "go", "lgbtq", "support", "group"]
    index = LexicalIndex()
    index.add("u", [("1", "support group on Friday"), ("2", "")])
    assert index.search("u", "when?", 5) == [] and index.search("v", "support", 5) == []
    assert [s for s, _ in index.search("u", "supporting", 5)] == ["1"]


# -- LoCoMo -------------------------------------------------------------------------------

def _locomo() -> list[dict]:
    """A tiny conversation in the LoCoMo format (tests/data/locomo_tiny.json): two
    sessions with dates, an image caption, and questions of categories 1, 2, 4 and 5."""
    return json.loads((Path(__file__).parent / "data" / "locomo_tiny.json").read_text())


def test_tiny_locomo_fixture_evaluates_to_a_known_recall(tmp_path: Path) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(_locomo()))
    [conv] = load_locomo(path)
    assert conv.turns[2].memory_text() == ("Alice: Look what I made at my Tuesday class. "
                                           "[shares a photo: a clay pottery vase]")
    assert conv.turns[3].timestamp == datetime(2023, 6, 2, 10, 0)
    multi = conv.questions[2]
    assert multi.evidence == ("D1:3", "D2:3") and multi.dropped == ("D9:9",)
    r = HybridRetriever(open_chroma(tmp_path / "c"), collection="locomo")
    result = evaluate(r, [conv], ks=(1, 6), config=SINGLE)
    # k=1: the two single-evidence questions are found, the two-turn one at best half.
    assert result["recall"]["1"] == {"1": 0.5, "2": 1.0, "3": 0.0, "4": 1.0, "all": pytest.approx(2.5 / 3)}
    assert result["recall"]["6"]["all"] == 1.0  # six turns: everything is retrieved
    assert set(result) == {"recall", "memory_tokens", "latency_ms"}
    assert result["memory_tokens"]["mean"] > 0 and result["latency_ms"]["p95"] >= result["latency_ms"]["p50"] > 0
    # With +-1 neighbours a hit shows up to three turns: recall can only grow, and so does the block.
    narrow = evaluate(r, [conv], ks=(1,), config=SINGLE, ingested=True)
    wide = evaluate(r, [conv], ks=(1,), config=RetrievalConfig(neighbours=1), ingested=True)
    assert narrow["recall"]["1"] == result["recall"]["1"]
    assert wide["recall"]["1"]["all"] >= narrow["recall"]["1"]["all"]
    assert wide["memory_tokens"]["mean"] > 1.3 * narrow["memory_tokens"]["mean"]  # context costs tokens


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d[0]["conversation"]["session_1"][1].pop("speaker"),
     r"\[0\] \(tiny-1\)\.conversation\.session_1\[1\]: missing key 'speaker'"),
    (lambda d: d[0].pop("qa"), r"\[0\] \(tiny-1\): missing key 'qa'"),
    (lambda d: d[0]["qa"][1].pop("evidence"), r"qa\[1\]: missing key 'evidence'"),
    (lambda d: d[0]["qa"][0].update(category="4"), r"qa\[0\]\.category: expected int, got str"),
    (lambda d: d[0]["conversation"].update(session_2="oops"), r"session_2: expected a list of turns"),
    (lambda d: d[0]["conversation"]["session_2"][0].update(dia_id="D1:1"), r"duplicate dia_id 'D1:1'"),
    (lambda d: d[0].pop("sample_id"), r"\[0\]: missing key 'sample_id'"),
])
def test_locomo_loader_names_the_bad_key(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = _locomo()
    mutate(data)
    with pytest.raises(LocomoFormatError, match=message):
        load_locomo(data)


def test_locomo_loader_rejects_files_that_are_not_locomo(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_locomo(bad)
    bad.write_text(json.dumps({"sample_id": "x"}))
    with pytest.raises(LocomoFormatError, match="top level: expected a list"):
        load_locomo(bad)


def test_render_block_with_no_hits_is_empty() -> None:
    assert render_block([], token_budget=100) == ""


def test_lastmile_bench_locomo_prints_the_documented_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from assistant.cli import main

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(_locomo()))
    assert main(["bench", "locomo", "--data", str(path), "--k", "1,6", "--json",
                 "--chroma", str(tmp_path / "c")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"recall", "memory_tokens", "latency_ms"}
    assert set(result["recall"]) == {"1", "6"} and result["recall"]["6"]["all"] == 1.0
    assert set(result["recall"]["1"]) == {"1", "2", "3", "4", "all"}
    assert 0.0 <= result["recall"]["1"]["all"] <= 1.0
    (tmp_path / "bad.json").write_text('{"not": "locomo"}')
    assert main(["bench", "locomo", "--data", str(tmp_path / "bad.json")]) == 2
    assert "error" in capsys.readouterr().err


def test_leave_one_out_picks_on_the_other_conversations_and_scores_the_held_out_one() -> None:
    from assistant.bench.locomo_eval import leave_one_out

    def row(n: int, r: float) -> dict:
        return {"n": n, "recall": {"10": r}}

    # "steady" is good everywhere; "lucky" is best in sample only thanks to conversation c.
    designs = {"steady": {"a": row(10, 0.8), "b": row(10, 0.8), "c": row(10, 0.8)},
               "lucky": {"a": row(10, 0.7), "b": row(10, 0.7), "c": row(10, 1.0)}}
    loco = leave_one_out(designs, 10)
    assert loco["in_sample_best"] == "steady" and loco["in_sample_recall"] == pytest.approx(0.8)
    assert [f["picked"] for f in loco["folds"]] == ["lucky", "lucky", "steady"]
    assert [f["recall"] for f in loco["folds"]] == [0.7, 0.7, 0.8]  # chosen elsewhere, scored here
    assert loco["folds"][0]["train"] == pytest.approx(0.85)
    assert loco["recall"] == pytest.approx((0.7 + 0.7 + 0.8) / 3)


def test_bench_reports_recall_by_conversation_and_the_loco_check(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from assistant.bench.locomo import design_grid, main

    data = _locomo()
    second = json.loads(json.dumps(data[0]))
    second["sample_id"] = "tiny-2"
    path = tmp_path / "two.json"
    path.write_text(json.dumps([data[0], second]))
    assert main(["bench", "locomo", "--data", str(path), "--k", "1,2", "--json", "--by-conversation",
                 "--loco", "--chroma", str(tmp_path / "c")][2:]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["by_conversation"]) == {"tiny-1", "tiny-2"}
    assert result["by_conversation"]["tiny-1"]["n"] == 3  # the category-5 question is not scored
    assert result["by_conversation"]["tiny-1"]["recall"] == result["by_conversation"]["tiny-2"]["recall"]
    loco = result["loco"]
    assert loco["k"] == 2 and [f["held_out"] for f in loco["folds"]] == ["tiny-1", "tiny-2"]
    assert set(loco["designs"]) == set(design_grid(RetrievalConfig()))
    assert 0.0 <= loco["recall"] <= 1.0 and loco["in_sample_best"] in loco["designs"]
