"""Chroma embedding function backed by the numpy MiniLM encoder.

Why: Chroma's default embedding function downloads ONNX weights at first use,
which fails offline. Registering ours under a stable name lets Chroma persist
``{"name": "lastmile-minilm", "config": {...}}`` with a collection and rebuild
this function when the collection is reopened without passing one. The
registration is per process: import this module before opening collections.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from chromadb.api.types import Documents, Embeddable, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from memory.minilm import MiniLMEncoder, get_encoder

__all__ = ["MODEL_NAME", "MiniLMEmbeddingFunction", "for_chroma"]

MODEL_NAME = "all-MiniLM-L6-v2"


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (384-d, L2-normalised) computed locally without torch."""

    def __init__(self, batch_size: int = 64) -> None:
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = int(batch_size)

    @property
    def encoder(self) -> MiniLMEncoder:
        """The process-wide encoder (weights load once, on first use)."""
        return get_encoder()

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chromadb's protocol names it
        vectors = self.encoder.encode(list(input), batch_size=self.batch_size)
        return [np.asarray(v, dtype=np.float32) for v in vectors]

    @staticmethod
    def name() -> str:
        return "lastmile-minilm"

    def default_space(self) -> Space:
        # Vectors are unit length, so cosine is the natural (and cheapest) metric.
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "l2", "ip"]

    def get_config(self) -> dict[str, Any]:
        # Persisted in the collection: keep it portable (no absolute paths).
        return {"model": MODEL_NAME, "batch_size": self.batch_size}

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        if config.get("model", MODEL_NAME) != MODEL_NAME:
            raise ValueError(f"unsupported model {config.get('model')!r}; only {MODEL_NAME}")

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        MiniLMEmbeddingFunction.validate_config(config)
        return MiniLMEmbeddingFunction(batch_size=int(config.get("batch_size", 64)))

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        # Changing the model would silently mix incompatible vectors in one collection.
        if new_config.get("model", MODEL_NAME) != old_config.get("model", MODEL_NAME):
            raise ValueError("the embedding model of an existing collection cannot change")


def for_chroma(function: MiniLMEmbeddingFunction | None = None) -> EmbeddingFunction[Embeddable]:
    """``function`` (a new one by default) typed as chromadb's parameter wants it: chromadb
    annotates ``embedding_function`` as taking documents or images (``Embeddable``); ours
    embeds documents, which is all a text collection ever hands it."""
    return cast("EmbeddingFunction[Embeddable]", function or MiniLMEmbeddingFunction())
