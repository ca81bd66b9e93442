"""Share of turns sent to human review on a mixed conversation (issue 13).

A replay of one realistic session against a travel policy: greetings, thanks, questions
back, arithmetic, right and wrong cited answers, an invented policy. The model is
scripted (the answers are the point, not the model), everything else is real: the store,
Chroma, MiniLM, the citation checker and the review queue. "before" is the old rule
(confidence below ``LASTMILE_REVIEW_THRESHOLD``), "after" what was actually queued
(the same, and ``guardrails.review_gate.worth_review``).

    python benchmarks/review_share.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

POLICY = ("# Travel policy\n\nThe daily per diem is 45 EUR within the EU and 60 EUR outside "
          "the EU.\n\nEconomy class is booked for flights under 6 hours. Business class is "
          "allowed for flights of 6 hours or more.\n\nHotels are reimbursed up to 120 EUR per night.")
#: (user, reply, should a reviewer see it)
TURNS = [
    ("Hello!", "Hello! How can I help you today?", False),
    ("What's the per diem in France?", "The per diem within the EU is 45 EUR [1].", False),
    ("Thanks!", "You're welcome! Anything else?", False),
    ("And in Japan?", "Outside the EU the per diem is 45 EUR [1].", True),
    ("What is 2 + 2?", "The answer is: 4.", False),
    ("Which class for a 4-hour flight?", "Economy class is booked for flights under 6 hours [1].", False),
    ("Can I fly business to New York (8 hours)?",
     "Business class is allowed for flights under 6 hours [1].", True),
    ("ok", "Great. Would you like me to check anything else?", False),
    ("How much for a hotel?", "Hotels are reimbursed up to 120 EUR per night [1].", False),
    ("What's the rental car policy?", "Rental cars must be compact models booked through Sixt, "
     "with a daily limit of 80 EUR and insurance included.", True),
    ("Tell me a joke", "Why did the suitcase go to therapy? It had too much baggage!", False),
    ("Good morning", "Good morning! What can I do for you?", False),
    ("Is the per diem outside the EU 60 EUR?", "Yes, outside the EU the per diem is 60 EUR [1].", False),
    ("Could you help me plan?", "Of course! Where are you travelling to?", False),
    ("Hotel cap in Paris?", "Hotels are reimbursed up to 200 EUR per night in Paris [1].", True),
    ("bye", "Goodbye, have a good trip!", False),
]


def main() -> int:
    from assistant import Assistant, ScriptedModel, Settings
    from memory.corpus import Corpus
    from memory.db import open_engine
    from memory.vectors import open_chroma

    tmp = Path(tempfile.mkdtemp(prefix="lm-review-"))
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'r.db'}",
                        index_turns=False, cache_mode="off", summarize_sessions=False,
                        extractive_answers="off")
    (tmp / "kb").mkdir()
    (tmp / "kb" / "policy.md").write_text(POLICY)
    docs = Corpus(open_engine(settings.resolved_database_url), open_chroma(settings.chroma_path))
    docs.ingest([tmp / "kb"], collection="policy")
    replies = iter([r for _, r, _ in TURNS])
    bot = Assistant(settings, model=ScriptedModel(fn=lambda _m: next(replies)), documents=docs)
    before = after = wanted = caught = 0
    for user, _, should in TURNS:
        reply = bot.chat(user, session_id="trip")
        old = reply.confidence is not None and reply.confidence < settings.review_threshold
        new = reply.review_status == "pending"
        if "-v" in sys.argv:
            print(f"{old:d} {new:d} {should:d} {reply.confidence} {user}")
        before, after, wanted, caught = before + old, after + new, wanted + should, caught + (new and should)
    n = len(TURNS)
    print(f"turns {n}: sent to review before {before} ({before / n:.0%}), after {after} "
          f"({after / n:.0%}); of the {wanted} answers a reviewer should see, {caught} queued")
    bot.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
