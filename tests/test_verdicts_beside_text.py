"""Issue 13: verdicts live beside the reply text, never in it. Under ``annotate`` the
stored reply keeps the model's text, the verdicts travel in the reply record, no prompt
ever carries a marker; migration 0016 cleans rows written before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from assistant import Assistant, ScriptedModel, Settings
from assistant.reply_record import ReplyRecord
from guardrails.grounding import LABELS
from memory.corpus import Corpus
from memory.db import open_engine
from memory.store import ConversationStore
from memory.vectors import open_chroma

POLICY = ("# Travel policy\n\nThe daily per diem is 45 EUR within the EU and 60 EUR outside "
          "the EU. Economy class is booked for flights under 6 hours.")
MARKS = ("⚠", "unverified")


def _no_marker(value: object) -> bool:
    blob = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return not any(m in blob for m in MARKS)


@pytest.fixture
def grounded(tmp_path: Path) -> tuple[Assistant, ScriptedModel]:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'v.db'}",
                        index_turns=True, cache_mode="off", summarize_sessions=False,
                        citation_policy="annotate", extractive_answers="off")
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "policy.md").write_text(POLICY)
    docs = Corpus(open_engine(settings.resolved_database_url), open_chroma(settings.chroma_path))
    docs.ingest([kb], collection="policy")
    # Every answer cites [1] and is wrong in a way the checker flags (a made-up number).
    model = ScriptedModel(fn=lambda messages: "The per diem is 999 EUR per day [1]. "
                          "Flights are booked in economy [1].")
    return Assistant(settings, model=model, documents=docs), model


def test_annotated_turns_leave_no_marker_in_store_or_prompt(grounded) -> None:
    bot, model = grounded
    flagged = 0
    for question in ("What is the per diem?", "And outside the EU?", "Which class for flights?",
                     "Repeat that please", "What did you say about the per diem?"):
        reply = bot.chat(question, session_id="trip")
        flagged += any(c.verdict == "unsupported" for c in reply.checks)
        assert reply.text.startswith("The per diem is 999 EUR per day [1].") and _no_marker(reply.text)
        bot.flush()  # the turn memory indexes the replies: recall could bring them back
    assert flagged >= 3  # the check did flag them (turns whose sources were shown)
    bot.chat("What is the per diem?", session_id="later")  # recall across sessions too
    for request in model.requests:
        assert _no_marker([m.content for m in request.messages])
    stored = [m for m in bot.sessions.history("trip") if m.role == "assistant"]
    assert len(stored) == 5 and all(_no_marker(m.content) for m in stored)
    record = ReplyRecord.from_dict(stored[0].context)
    assert record.checks is not None  # the verdicts are in the record instead
    assert next(c.verdict for c in record.checks) == "unsupported"
    assert ReplyRecord.from_dict(record.to_dict()).checks == record.checks


def test_migration_0016_moves_old_markers_into_the_record(database_url: str) -> None:
    from memory.db import migrate

    engine = open_engine(database_url, run_migrations=False)
    migrate(engine, "0015")
    old = ("Tram 28 runs to Campo de Ourique [1]. The ferry takes three hours [2]."
           + LABELS["unsupported"] + " It is cheap [3]." + LABELS["invalid_citation"] + " Enjoy!")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, created_at) VALUES ('u', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO conversations (user_id, key, title, created_at, updated_at) "
                          "VALUES ('u', 's', 't', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        for role, content in (("user", "How do I get around?"), ("assistant", old),
                              ("assistant", "Clean reply [1].")):
            conn.execute(text("INSERT INTO messages (conversation_id, user_id, role, content, status, "
                              "created_at, context) SELECT id, 'u', :role, :content, 'ok', "
                              "CURRENT_TIMESTAMP, :ctx FROM conversations"),
                         {"role": role, "content": content, "ctx": json.dumps({"notice": None})})
    store = ConversationStore(open_engine(database_url))  # upgrades to head
    user, migrated, clean = store.history("u", "s")
    assert migrated.content == ("Tram 28 runs to Campo de Ourique [1]. The ferry takes three "
                                "hours [2]. It is cheap [3]. Enjoy!")
    record = ReplyRecord.from_dict(migrated.context)
    assert [(c.text, c.cited, c.verdict) for c in record.checks or ()] == [
        ("The ferry takes three hours.", ("2",), "unsupported"),
        ("It is cheap.", ("3",), "invalid_citation")]
    assert clean.content == "Clean reply [1]." and ReplyRecord.from_dict(clean.context).checks is None
    assert user.content == "How do I get around?"
