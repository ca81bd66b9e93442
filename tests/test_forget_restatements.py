"""Issue 13: forget means gone. Forgetting a fact keeps every stored message that
restates it out of later prompts, in any session, also one said after the forget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from assistant import Assistant, ScriptedModel, Settings
from memory.forgotten import restating_ids

RESTATED = "Since you are allergic to shellfish, skip the prawn paella and take the grilled chicken."


def _prompt(messages: Sequence) -> str:
    return "\n".join(str(m.content) for m in messages)


def test_a_restatement_in_a_later_session_never_reaches_a_prompt(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'f.db'}",
                        index_turns=True, cache_mode="off", summarize_sessions=False,
                        extractive_answers="off")
    replies = iter(["Noted.", RESTATED, "Try the vegetable curry.", "Try the vegetable curry."])
    model = ScriptedModel(fn=lambda _m: next(replies))
    with Assistant(settings, model=model) as bot:
        bot.chat("I'm allergic to shellfish", session_id="s1")
        bot.flush()
        [fact] = bot.facts.list("default")
        assert "shellfish" in fact.text
        bot.facts.forget("default", fact.id)
        assert bot.facts.list("default") == []
        # Later, the assistant says it again (a stale source, a model's guess): stored, indexed.
        bot.chat("What should I order at the seafood restaurant tonight?", session_id="s2")
        bot.flush()
        restated = next(m for m in bot.sessions.history("s2") if m.role == "assistant")
        assert restated.content == RESTATED
        # The turn memory does find it for the next question: only suppression keeps it out.
        hits = bot.memory.turns.retriever.search("default", "seafood dinner ideas shellfish", k=10)
        assert f"msg-{restated.id}" in {i.source_id for h in hits for i in (h.item, *h.context)}
        assert restated.id in restating_ids(bot.store.engine, "default")
        bot.chat("Any seafood dinner ideas for me?", session_id="s3")
        assert "shellfish" not in _prompt(model.requests[-1].messages).lower()
        # Told again, it is a fact again and no longer suppressed.
        bot.chat("I'm allergic to shellfish", session_id="s4")
        bot.flush()
        assert [f.text for f in bot.facts.list("default")] == [fact.text]
        assert restated.id not in restating_ids(bot.store.engine, "default")


def test_unrelated_mentions_are_not_suppressed(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'g.db'}",
                        index_turns=False, cache_mode="off", summarize_sessions=False,
                        extractive_answers="off")
    with Assistant(settings, model=ScriptedModel(fn=lambda _m: "Noted.")) as bot:
        bot.chat("I'm allergic to shellfish", session_id="s1")
        bot.chat("The harbour market opens at dawn on Saturdays.", session_id="s2")
        bot.flush()
        [fact] = bot.facts.list("default")
        bot.facts.forget("default", fact.id)
        ids = restating_ids(bot.store.engine, "default")
        kept = [m for m in bot.sessions.history("s2")]
        assert kept and not ids & {m.id for m in kept}
        assert next(m.id for m in bot.sessions.history("s1") if m.role == "user") in ids


def test_a_forgotten_fact_leaves_the_session_summary(tmp_path: Path) -> None:
    """Summaries are copies too: the versions folded from the fact's message go at the
    forget, and the refold (the next turns) leaves that message out."""
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'f.db'}",
                        index_turns=False, cache_mode="off", summarize_sessions=True,
                        summary_model="extractive", context_summary_share=0.3, max_reply_tokens=30,
                        extractive_answers="off")
    model = ScriptedModel(fn=lambda _m: "Noted.", context_window=180)
    with Assistant(settings, model=model) as bot:
        bot.chat("I'm allergic to shellfish", session_id="s")
        for i in range(14):
            bot.chat(f"I keep {i} plants on my balcony", session_id="s")
            bot.flush()
        versions = bot.summaries.store.versions("default", "s")
        assert versions and "shellfish" in versions[-1].text.lower()  # else this proves nothing
        [fact] = bot.facts.list("default")
        bot.facts.forget("default", fact.id)
        assert all("shellfish" not in v.text.lower() for v in bot.summaries.store.versions("default", "s"))
        for i in range(4):
            bot.chat(f"I water {i} of them daily", session_id="s")
            bot.flush()
        refolded = bot.summaries.store.versions("default", "s")
        assert refolded and all("shellfish" not in v.text.lower() for v in refolded)
        assert "shellfish" not in _prompt(model.requests[-1].messages).lower()
