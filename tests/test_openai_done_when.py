"""Issue 6's done-when for the API: the official ``openai`` SDK, pointed at the live
server's ``/v1``, streams an answer that used the user's memory and cites the sample
corpus (the project's README and docs, ingested as ``lastmile serve`` does).

Real server (FastAPI + Gradio under uvicorn), real SQLite, Chroma,
MiniLM, fact extraction on the job worker and the citation checker; only the model is
scripted, and it answers from what its prompt shows it, as a real model would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import openai
import pytest
from rich.console import Console

from assistant import Assistant, ScriptedModel, Settings
from assistant.grounding import SAMPLE_COLLECTION, sample_corpus_paths
from assistant.cli.ingest import sample_corpus

SOURCE = re.compile(r"^\[(\d+)\] .+? \((.+?)\)\n(.*?)(?=^\[\d+\] |\Z)", re.MULTILINE | re.DOTALL)


def split_prompt(system: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The system prompt's part before the numbered sources, and the sources
    ``(number, path, excerpt)`` it shows."""
    first = re.search(r"^\[1\] ", system, re.MULTILINE)
    assert first is not None, "the prompt shows no numbered sources"
    return system[:first.start()], SOURCE.findall(system[first.start():])


def plain_sentence(excerpt: str) -> str | None:
    """A prose sentence of a source, to quote verbatim (no markdown, long enough to check)."""
    for sentence in re.split(r"(?<=\.)\s+", " ".join(excerpt.split())):
        if re.fullmatch(r"[A-Z][^`*#|<>\[\]]{40,}\.", sentence) and len(sentence.split()) >= 8:
            return sentence
    return None


class Reader:
    """The scripted model: greets the introduction; to the question, states the city
    its memory block names and quotes a sentence of the first source that has one,
    citing that source's number."""

    def __init__(self) -> None:
        self.answers: list[str] = []

    def __call__(self, messages: Sequence) -> str:
        if "My name is" in str(messages[-1].content):
            answer = "Nice to meet you."
        else:
            memory, sources = split_prompt(str(messages[0].content))
            city = "Porto" if "lives in Porto" in memory else "somewhere I do not know"
            n, quote = next((n, q) for n, _path, text in sources if (q := plain_sentence(text)))
            answer = f"You live in {city}. {quote[:-1]} [{n}]."
        self.answers.append(answer)
        return answer


@pytest.mark.slow  # embeds the whole sample corpus
def test_openai_sdk_streams_an_answer_from_memory_citing_the_sample_corpus(
        tmp_path: Path, live_server) -> None:
    # SQLite only: embedding the whole sample corpus is the slow part (~10 s idle, a
    # minute on a busy box); the endpoint itself runs on both backends in test_openai_api.
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'api.db'}",
                        index_turns=False, cache_mode="off")
    docs = sample_corpus(settings, Console(quiet=True))  # what `lastmile serve` ingests
    assert docs is not None and docs.collections(None).get(SAMPLE_COLLECTION, 0) >= len(
        sample_corpus_paths()) >= 2  # README.md and docs/*.md
    reader = Reader()
    model = ScriptedModel(fn=reader)
    with Assistant(settings, model=model, documents=docs) as bot:
        url, _ = live_server(bot)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)

        intro = client.chat.completions.create(model="lastmile", messages=[
            {"role": "user", "content": "My name is Ann and I live in Porto."}])
        assert intro.choices[0].message.content == "Nice to meet you."
        bot.flush()  # fact extraction runs as a background job
        assert {f.key: f.value for f in bot.facts("default")} == {"name": "Ann", "home": "Porto"}

        question = "What is lastmile, and which city do I live in?"
        chunks = list(client.chat.completions.create(
            model="lastmile", stream=True, messages=[{"role": "user", "content": question}]))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        final = chunks[-1]
        extra = final.model_extra["lastmile"]

    prompt = model.requests[-1].messages
    memory, sources = split_prompt(str(prompt[0].content))
    assert "lives in Porto" in memory and "name is Ann" in memory  # the user's memory was used…
    assert str(prompt[-1].content) == question and "Porto" not in question
    shown = {Path(path).name for _n, path, _text in sources}
    assert shown and shown <= {p.name for p in sample_corpus_paths()}  # …and the sample corpus
    assert len(chunks) > 3 and text == reader.answers[-1]  # streamed in pieces
    assert text.startswith("You live in Porto. ")
    number = re.fullmatch(r".* \[(\d+)\]\.", text).group(1)  # type: ignore[union-attr]

    assert final.choices[0].finish_reason == "stop"
    assert extra["session_id"] != intro.model_extra["lastmile"]["session_id"]  # a new session
    # the cited source (another sample document saying the same may be listed as support too)
    [cited] = [c for c in extra["citations"] if c["source_id"] == number]
    assert cited["verdict"] == "supported"
    assert Path(cited["path"]).name in {p.name for p in sample_corpus_paths()}
    assert cited["snippet"] and cited["title"]
    assert [s["verdict"] for s in cited["sentences"]] == ["supported"]


def test_a_crashing_turn_is_an_openai_error_and_the_message_is_kept(tmp_path: Path,
                                                                    live_server) -> None:
    """Found by the test above while its model still had a bug: an unexpected exception
    cut the SSE stream mid-way ("incomplete chunked read") instead of an error event."""
    def broken(messages: Sequence) -> str:
        raise RuntimeError("bug in the model adapter")

    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'e.db'}",
                        index_turns=False, cache_mode="off")
    with Assistant(settings, model=ScriptedModel(fn=broken)) as bot:
        url, _ = live_server(bot)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIError, match="failed to answer; the message is kept"):
            list(client.chat.completions.create(model="lastmile", stream=True, messages=[
                {"role": "user", "content": "stream please"}]))
        with pytest.raises(openai.InternalServerError, match="failed to answer") as plain:
            client.chat.completions.create(model="lastmile", messages=[
                {"role": "user", "content": "plain please"}])
        assert plain.value.status_code == 500 and "RuntimeError" not in str(plain.value.body)
        kept = [(m.role, m.status, m.content) for s in bot.sessions()
                for m in bot.history(s.session_id)]
    assert sorted(kept) == sorted([("user", "ok", "stream please"), ("assistant", "error", ""),
                                   ("user", "ok", "plain please"), ("assistant", "error", "")])
