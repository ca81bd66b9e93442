"""How replies are captioned in the chat (pure functions; the browser tests cover wiring)."""

from ui import views


def test_caption_names_provider_and_flags_problems() -> None:
    ok = views.assistant_content("Hello", "local:SmolLM2", "ok")
    assert "Hello" in ok and "local:SmolLM2" in ok and views.INCOMPLETE_CLASS not in ok
    cut = views.assistant_content("Hel", "local:SmolLM2", "ok", finish_reason="length")
    assert views.TRUNCATED_CLASS in cut and "length limit" in cut
    broken = views.assistant_content("Hel", "openai:x", "incomplete", "The reply was cut off.")
    assert views.INCOMPLETE_CLASS in broken and "The reply was cut off." in broken


def test_provider_label_is_escaped_and_open_code_fences_are_closed() -> None:
    out = views.assistant_content("```python\nprint(1)", "<script>x</script>", "ok")
    assert "<script>" not in out and out.count("```") == 2


def test_sources_panel_shows_verdicts_origin_and_escapes() -> None:
    from assistant.reply import Citation

    cited = Citation(source_id="1", title="Guide <b>", path="docs/guide.md", snippet="Trams run <late>.",
                     verdict="unsupported")
    matched = {"source_id": "2", "title": "Ferry", "path": "f.md", "snippet": "Ten minutes.",
               "verdict": "supported", "origin": "attributed"}
    out = views.citations_html([cited, matched])
    assert out.count('class="lm-cite"') == 2
    assert 'data-verdict="unsupported"' in out and "✗ not supported" in out  # calibrated wording (issue 13)
    assert 'data-verdict="supported"' in out and "attributed by lastmile" in out
    assert out.count("attributed by lastmile") == 1  # only the one lastmile matched
    assert "Guide <b>" not in out and "Guide &lt;b&gt;" in out and "&lt;late&gt;" in out
    assert views.citations_html([]) == "" and views.citations_html(None) == ""


def test_chat_view_hides_superseded_and_carries_cost_and_badges() -> None:
    from datetime import UTC, datetime

    from memory.store import StoredMessage

    now = datetime.now(UTC)
    history = [
        StoredMessage(1, "s", "u", "user", "hi", "ok", now),
        StoredMessage(2, "s", "u", "assistant", "old", "superseded", now, provider="p"),
        StoredMessage(3, "s", "u", "assistant", "new", "ok", now, provider="p", latency_ms=1500,
                      prompt_tokens=10, completion_tokens=5, context={"review_status": "pending"}),
    ]
    messages, ids, liked = views.chat_view(history, {3: 1}, {1: 0.0123})
    assert [m["role"] for m in messages] == ["user", "assistant"] and ids == [[1, "user"], [3, "assistant"]]
    assert "old" not in str(messages) and "1.5 s" in messages[1]["content"]
    assert "reply 5 tokens" in messages[1]["content"] and "$0.0123" in messages[1]["content"]
    assert "the prompt was 10 tokens" in messages[1]["content"]  # apart: the caption is the reply's
    assert "pending review" in messages[1]["content"] and liked == ["Like"]
