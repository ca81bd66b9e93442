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
