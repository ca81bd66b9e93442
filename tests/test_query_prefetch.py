"""The turn's query embedding computed ahead on a bounded thread (issue 14): the search
gets the same vector without encoding again, never waits behind a queue, and a failure
ahead is reported by the search as if nothing had been computed ahead."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memory.dense import QueryEmbeddingCache


class Encoder:
    """Counts calls and the threads they ran on; ``gate`` holds a call until set."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.started.set()
        self.gate.wait(10)
        self.calls.append((texts[0], threading.get_ident()))
        if self.fail:
            raise RuntimeError("no model file")
        return np.full((1, 4), float(len(texts[0])), np.float32)


def test_a_prefetched_query_is_encoded_once_off_the_asking_thread() -> None:
    cache, encode = QueryEmbeddingCache(), Encoder()
    with ThreadPoolExecutor(max_workers=1) as pool:
        encode.gate.clear()
        cache.prefetch("what is the fee?", encode, pool)
        cache.prefetch("what is the fee?", encode, pool)  # under way: not again
        assert encode.started.wait(10)  # running now, so the search waits for it
        encode.gate.set()
        vec = cache.get("what is the fee?", encode)
    assert vec.tolist() == [16.0] * 4
    assert [t for t, _ in encode.calls] == ["what is the fee?"]
    assert encode.calls[0][1] != threading.get_ident()
    assert cache.get("what is the fee?", encode) is vec  # cached: no third call
    assert len(encode.calls) == 1


def test_a_query_still_queued_is_computed_by_the_search_itself() -> None:
    cache, blocker, encode = QueryEmbeddingCache(), Encoder(), Encoder()
    with ThreadPoolExecutor(max_workers=1) as pool:
        blocker.gate.clear()
        cache.prefetch("someone else's turn", blocker, pool)  # occupies the one thread
        assert blocker.started.wait(10)
        cache.prefetch("my turn", encode, pool)  # queued behind it
        vec = cache.get("my turn", encode)  # does not wait for the other turn
        assert encode.calls == [("my turn", threading.get_ident())]
        blocker.gate.set()
    assert vec.tolist() == [7.0] * 4
    assert len(encode.calls) == 1  # the queued one was taken back, never run


def test_a_failure_ahead_is_raised_by_the_search() -> None:
    cache, encode = QueryEmbeddingCache(), Encoder(fail=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        encode.gate.clear()
        cache.prefetch("q", encode, pool)
        assert encode.started.wait(10)
        encode.gate.set()
        with pytest.raises(RuntimeError, match="no model file"):
            cache.get("q", encode)
    assert len(encode.calls) == 2  # ahead, then again by the search (which raised)
    assert len(cache) == 0
