"""The providers issue's outage story, end to end: a real OpenAI-compatible server (the
fault server, via the real `openai` SDK) in front of the real local model.

Kill the server mid-conversation → the next turns are answered by `local`, nothing is
lost; bring it back → after the breaker's reset timeout a half-open probe returns the
traffic to it.
"""

from __future__ import annotations

import pytest

from assistant import Assistant, Settings
from assistant.testing import Fault, FaultServer
from assistant.layers.resilience import BreakerModel

pytestmark = pytest.mark.slow
RESET_S = 30.0


def test_server_dies_and_comes_back(tmp_path) -> None:
    with FaultServer() as fs:
        settings = Settings(
            data_dir=tmp_path / "d", providers="openai:test-model,local",
            openai_api_key="sk-test", openai_base_url=fs.url + "/v1",  # type: ignore[arg-type]
            retry_attempts=2, retry_initial_wait_s=0.01, retry_max_wait_s=0.05,
            breaker_failure_threshold=2, breaker_reset_timeout_s=RESET_S,
            provider_connect_timeout_s=0.5, provider_read_timeout_s=2.0,
            max_reply_tokens=8, local_n_ctx=1024, index_turns=False,
            # Background extraction would call the chain too (and could be the probe);
            # this test follows the chat turns alone.
            facts_model="rules", summary_model="extractive")
        with Assistant(settings) as bot:
            answered_by = []
            first = bot.chat("hello", session_id="s")
            answered_by.append(first.provider)

            primary = bot.model.models[0]  # type: ignore[attr-defined]
            assert isinstance(primary, BreakerModel)
            now = [0.0]  # the breaker's clock, so a slow local model can't race the timeout
            primary.breaker._clock = lambda: now[0]
            fs.stop()  # the remote server dies mid-conversation
            for i in range(3):
                reply = bot.chat(f"are you there {i}?", session_id="s")
                assert reply.ok, reply.error
                answered_by.append(reply.provider)
                if i == 1:  # two failed turns: the circuit opens
                    assert primary.breaker.state == "open"
            calls_while_open = len(fs.requests)

            fs.start()  # back on the same port
            now[0] += RESET_S + 0.1
            assert primary.breaker.state == "half_open"  # the next call is the probe
            back = bot.chat("and now?", session_id="s")
            answered_by.append(back.provider)
            assert primary.breaker.state == "closed"

        history = bot.history("s")
    assert answered_by == ["openai:test-model", "local:SmolLM2-135M-Instruct",
                           "local:SmolLM2-135M-Instruct", "local:SmolLM2-135M-Instruct",
                           "openai:test-model"]
    assert calls_while_open == 1  # only the first turn reached the server
    assert back.text == "echo: and now?"
    # Nothing lost: every user message and every reply is stored, in order.
    assert [m.role for m in history] == ["user", "assistant"] * 5
    assert all(m.status == "ok" for m in history)
    assert [m.content for m in history if m.role == "user"] == [
        "hello", "are you there 0?", "are you there 1?", "are you there 2?", "and now?"]


def test_mid_stream_cut_restarts_on_the_next_provider(tmp_path) -> None:
    with FaultServer() as fs:
        fs.enqueue(Fault.cut_stream(after_chunks=2))
        settings = Settings(
            data_dir=tmp_path / "d", providers="openai:test-model,scripted",
            openai_api_key="sk-test", openai_base_url=fs.url + "/v1",  # type: ignore[arg-type]
            retry_attempts=1, index_turns=False, facts_model="rules", summary_model="extractive")
        with Assistant(settings) as bot:
            stream = bot.stream("tell me a story", session_id="s")
            chunks = list(stream)
            reply = stream.reply
    from assistant.reply import Restart

    restarts = [c for c in chunks if isinstance(c, Restart)]
    assert len(restarts) == 1 and restarts[0].discarded and restarts[0].provider == "scripted"
    assert reply is not None and reply.ok and reply.provider == "scripted"
    assert reply.text == "(scripted) you said: tell me a story"
