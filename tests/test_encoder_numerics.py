"""The encoder is batch-invariant and numerically safe: a text's embedding does not depend
on what it is batched with (padding, neighbours, batch size), and no NaN or inf ever
leaves it — a NaN vector silently corrupts every score and stored embedding after it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from memory.minilm import MiniLMEncoder, get_encoder

NAN_BATCH = Path(__file__).parent / "data" / "minilm_nan_batch.json"  # a batch that gave NaN
WORDS = ("the per diem is 45 EUR within the EU travel policy flights economy business class "
         "over under hours Lisbon Porto allergy shellfish ## | @ (Netflix) 1994 nominations "
         "record drama series Emmy ☃ 東京 Ωmega").split()


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return get_encoder()


def _text(rng: random.Random) -> str:
    kind = rng.random()
    n = rng.randint(1, 4) if kind < 0.3 else rng.randint(5, 40) if kind < 0.8 else rng.randint(200, 400)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def test_the_reported_nan_batch_is_finite_and_equals_single_encodings(encoder: MiniLMEncoder) -> None:
    texts = json.loads(NAN_BATCH.read_text())
    batch = encoder.encode(texts)
    assert np.isfinite(batch).all()
    for row, text in zip(batch, texts, strict=True):
        np.testing.assert_allclose(row, encoder.encode([text])[0], atol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_every_row_equals_its_single_text_encoding(encoder: MiniLMEncoder, seed: int) -> None:
    rng = random.Random(seed)
    texts = [_text(rng) for _ in range(rng.randint(2, 12))]
    batch = encoder.encode(texts, batch_size=rng.choice([1, 2, 3, 64]))
    assert np.isfinite(batch).all()
    singles = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_degenerate_inputs_stay_finite(encoder: MiniLMEncoder) -> None:
    texts = ["", " ", "\x00\x01", "a" * 5000, "🙂" * 300, "## | @ | ##"]
    out = encoder.encode(texts)
    assert out.shape == (len(texts), encoder.dim)
    assert np.isfinite(out).all()
