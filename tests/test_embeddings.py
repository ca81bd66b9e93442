"""The numpy MiniLM encoder against pinned sentence-transformers vectors, and
its Chroma embedding function end to end (persist, reopen, query)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.api.client import SharedSystemClient
from chromadb.config import Settings

from memory.embedding_function import MiniLMEmbeddingFunction
from memory.minilm import MiniLMEncoder, _attention, _Workspace, default_model_dir, gelu, get_encoder

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text("utf-8"))
TEXTS = [r["text"] for r in REFERENCE["sentences"]]
VECTORS = np.array([r["vector"] for r in REFERENCE["sentences"]], dtype=np.float64)

DOCS = {
    "cat": "The cat curled up on the warm windowsill and fell asleep.",
    "bread": "Knead the dough, let it rise overnight, then bake the sourdough loaf at 230 degrees.",
    "stocks": "Share prices dropped sharply after the central bank raised interest rates.",
    "rocket": "The spacecraft launched from the pad and reached orbit ten minutes later.",
}


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return get_encoder()


def test_matches_sentence_transformers_reference(encoder: MiniLMEncoder) -> None:
    got = encoder.encode(TEXTS).astype(np.float64)
    assert got.shape == VECTORS.shape == (len(TEXTS), 384)
    for key, g, ref in zip((r["key"] for r in REFERENCE["sentences"]), got, VECTORS):
        delta = float(np.abs(g - ref).max())
        cos = float(g @ ref / (np.linalg.norm(g) * np.linalg.norm(ref)))
        assert delta <= 1e-5 and cos >= 0.99999, f"{key}: max|d|={delta:.2e} cos={cos:.8f}"


def test_long_text_is_truncated_at_256_tokens(encoder: MiniLMEncoder) -> None:
    long = next(r["text"] for r in REFERENCE["sentences"] if r["key"] == "long")
    words = long.split()
    # Appending text beyond the 256-token window must not change the vector...
    same = encoder.encode([long + " extra words that fall past the limit"])[0]
    np.testing.assert_allclose(same, encoder.encode([long])[0], atol=1e-6)
    # ...while a 128-token cut (the tokenizer.json default) would.
    short = encoder.encode([" ".join(words[:100])])[0]
    assert float(np.abs(short - encoder.encode([long])[0]).max()) > 1e-3


def test_batches_equal_single_texts_in_input_order(encoder: MiniLMEncoder) -> None:
    singles = np.stack([encoder.encode([t])[0] for t in TEXTS])
    for batch_size in (1, 3, 64):
        np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=batch_size), singles, atol=2e-6)
    perm = np.random.default_rng(7).permutation(len(TEXTS))
    np.testing.assert_allclose(encoder.encode([TEXTS[i] for i in perm], batch_size=4),
                               singles[perm], atol=2e-6)


def test_output_is_float32_unit_length(encoder: MiniLMEncoder) -> None:
    out = encoder.encode(TEXTS + ["a", "b c d"] * 20, batch_size=7)
    assert encoder.dim == 384
    assert out.dtype == np.float32 and out.shape == (len(TEXTS) + 40, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert encoder.encode([]).shape == (0, 384)


def test_gelu_uses_an_accurate_erf() -> None:
    x = np.linspace(-12, 12, 240_001, dtype=np.float32)
    ref = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    err = np.abs(gelu(x.copy()).astype(np.float64) - ref)
    # torch's own float32 GELU is off by ~1e-6 here; tanh-GELU would be off by ~5e-4.
    assert float((err / np.maximum(1.0, np.abs(ref))).max()) < 3e-6


@pytest.mark.parametrize("length", [5, 60])  # strided-view and split-copy layouts
@pytest.mark.parametrize("shift", [0.0, 3.0])  # logits overflowing / underflowing exp()
def test_attention_matches_float64_at_extreme_logits(length: int, shift: float) -> None:
    batch, heads, hd = 2, 12, 32
    rng = np.random.default_rng(length)
    scale = 1.0 if shift else 4.0
    raw = (rng.standard_normal((batch * length, 3 * heads * hd)) * scale).astype(np.float32)
    bias = np.zeros((3, 1, heads, 1, hd), dtype=np.float32)
    bias[0], bias[1] = shift, -shift  # q.k gains -shift^2 * hd: every logit very negative
    mask = np.ones((batch, length), dtype=bool)
    mask[1, length // 2:] = False
    ws = _Workspace(batch, length, heads * hd, heads, 4 * heads * hd)
    ws.qkv_raw[...] = raw
    _attention(ws, bias, np.where(mask, np.float32(0), np.float32(-1e9))[:, None, None, :])

    qkv = raw.astype(np.float64).reshape(batch, length, 3, heads, hd).transpose(2, 0, 3, 1, 4) + bias
    scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) + np.where(mask, 0.0, -np.inf)[:, None, None, :]
    assert scores.max() > 100 if shift == 0 else scores.max() < -100
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    expected = (probs @ qkv[2]).transpose(0, 2, 1, 3).reshape(batch * length, heads * hd)
    assert np.isfinite(ws.merged).all()
    np.testing.assert_allclose(ws.merged, expected, atol=2e-3)


def test_get_encoder_loads_once_across_threads() -> None:
    seen: list[MiniLMEncoder] = []
    threads = [threading.Thread(target=lambda: seen.append(get_encoder())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in seen}) == 1 and seen[0] is get_encoder()
    assert default_model_dir().joinpath("model.safetensors").is_file()


# --- Chroma -----------------------------------------------------------------

def _client(path: Path):  # type: ignore[no-untyped-def]
    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def _nearest(collection, query: str) -> str:  # type: ignore[no-untyped-def]
    return collection.query(query_texts=[query], n_results=1)["ids"][0][0]


def test_embedding_function_contract(encoder: MiniLMEncoder) -> None:
    ef = MiniLMEmbeddingFunction(batch_size=16)
    out = ef(["hello world", ""])
    assert len(out) == 2 and all(v.dtype == np.float32 and v.shape == (384,) for v in out)
    np.testing.assert_allclose(out[0], encoder.encode(["hello world"])[0], atol=1e-7)
    assert MiniLMEmbeddingFunction.name() == "lastmile-minilm"
    assert ef.default_space() == "cosine" and "cosine" in ef.supported_spaces()
    config = ef.get_config()
    assert config == {"model": "all-MiniLM-L6-v2", "batch_size": 16}
    assert not any(isinstance(v, str) and ("/" in v or "\\" in v) for v in config.values())
    rebuilt = MiniLMEmbeddingFunction.build_from_config(config)
    assert isinstance(rebuilt, MiniLMEmbeddingFunction) and rebuilt.batch_size == 16
    assert not ef.is_legacy()
    with pytest.raises(ValueError):
        MiniLMEmbeddingFunction.build_from_config({"model": "some-other-model"})


def test_chroma_persist_and_reopen_without_embedding_function(tmp_path: Path, encoder: MiniLMEncoder) -> None:
    client = _client(tmp_path)
    col = client.create_collection("notes", embedding_function=MiniLMEmbeddingFunction())
    col.add(ids=list(DOCS), documents=list(DOCS.values()))
    assert _nearest(col, "a kitten sleeping in the sun") == "cat"
    assert _nearest(col, "how do I make bread at home") == "bread"

    stored = col.get(ids=["rocket"], include=["embeddings"])["embeddings"][0]
    np.testing.assert_allclose(stored, encoder.encode([DOCS["rocket"]])[0], atol=1e-6)

    persisted = json.dumps([col.configuration_json, col.schema.serialize_to_json()])
    assert "lastmile-minilm" in persisted and '"all-MiniLM-L6-v2"' in persisted
    assert str(tmp_path) not in persisted and "site-packages" not in persisted
    assert str(default_model_dir()) not in persisted
    assert col.configuration_json["embedding_function"]["name"] == "lastmile-minilm"
    assert col.configuration_json["hnsw"]["space"] == "cosine"

    # A genuinely new client: drop chroma's per-path system cache first.
    del col, client
    SharedSystemClient.clear_system_cache()
    reopened = _client(tmp_path).get_collection("notes")
    ef = reopened.configuration["embedding_function"]
    assert isinstance(ef, MiniLMEmbeddingFunction) and ef.name() == "lastmile-minilm"
    assert _nearest(reopened, "interest rates and the stock market") == "stocks"
    res = reopened.query(query_texts=["a rocket going to space"], n_results=4)
    assert res["ids"][0][0] == "rocket"
    # Cosine distance of our own query vector to the stored one.
    q = encoder.encode(["a rocket going to space"])[0]
    expected = 1.0 - float(q @ encoder.encode([DOCS["rocket"]])[0])
    assert res["distances"][0][0] == pytest.approx(expected, abs=1e-4)


def test_chroma_reopen_in_a_fresh_process(tmp_path: Path) -> None:
    client = _client(tmp_path)
    client.create_collection("notes", embedding_function=MiniLMEmbeddingFunction()).add(
        ids=list(DOCS), documents=list(DOCS.values()))
    del client
    SharedSystemClient.clear_system_cache()
    script = (
        "import sys, chromadb\n"
        "from chromadb.config import Settings\n"
        "import memory.embedding_function  # registers 'lastmile-minilm'\n"
        "c = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))\n"
        "col = c.get_collection('notes')\n"
        "ef = col.configuration['embedding_function']\n"
        "hit = col.query(query_texts=['my cat is napping'], n_results=1)['ids'][0][0]\n"
        "print(type(ef).__name__, ef.name(), hit)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["MiniLMEmbeddingFunction", "lastmile-minilm", "cat"]
