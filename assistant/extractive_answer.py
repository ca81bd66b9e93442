"""Extractive answers for a model too small to write them: pick the stored fact or source
sentence that answers the question, verify it, and lead the reply with it quoted.

Why: SmolLM2-135M, the embedded default, had the right fact or chunk in its prompt and
still answered "20 euros" for "120 EUR per night". A quote with its citation is right by
construction; what has to be checked is that it *answers the question*:

* relevance: MiniLM cosine between the question and the sentence (with its section
  heading), blended with how many of the question's content words the sentence, its
  section and its document title contain;
* the value frame: the question's type says what kind of value answers it ("how much" →
  an amount, "how long / how many / when" → a number or a time, "who" / "where" → a
  name); a sentence without one does not answer it;
* the qualifier: a question bound to a condition ("outside the EU", "a 4-hour flight")
  rejects a sentence bound to the opposite one ("within the EU", "under 6 hours"), and
  prefers one whose range contains the question's number;
* the quote is verbatim in the source it cites; the citation guard checks the reply
  after the turn as it checks any answer, and the model's additions must pass it.

When the question is about the documents (they are on its topic) or about the user, and
nothing passes, the plan is a refusal ("I don't find this in your documents"), decided
here, before any model call, so the model cannot talk its way around it. Everything else
(chit-chat, requests for writing) goes to the model as before. The plan is deterministic
for the same question and snippets. Used by ``assistant.layers.extractive``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from guardrails.claims import STOP, content_stems, name_stems, numbers, split_sentences, stem, tokens

__all__ = ["LEAD_THRESHOLD", "NOT_FOUND_DOCS", "NOT_FOUND_SELF", "TOPIC_THRESHOLD", "AnswerPlan",
           "Candidate", "candidates", "plan_answer", "rank", "second_person"]

#: Blended relevance a sentence needs to lead the reply (cosine and word coverage).
LEAD_THRESHOLD = 0.5
#: A question this close (cosine) to a shown document chunk is about the documents.
TOPIC_THRESHOLD = 0.3
W_COS = 0.5
MAX_QUESTION_CHARS = 500  # longer messages are tasks, not questions a sentence answers
FRAME_PENALTY = 0.5  # the sentence has no value of the kind the question asks for
QUALIFIER_PENALTY = 0.4  # bound to the opposite condition, or its range excludes the number
RANGE_BONUS = 0.1  # its range contains the question's number
NOT_FOUND_DOCS = "I don't find this in your documents."
NOT_FOUND_SELF = "I don't find this in what you have told me."

Action = Literal["lead", "refuse", "model"]

_QUESTION = re.compile(r"\?\s*$|^\s*(?:what|which|who|whom|whose|where|when|why|how|is|are|am|was|"
                       r"were|do|does|did|can|could|may|might|must|shall|should|will|would|has|"
                       r"have|had|tell me|list|name|show me)\b", re.I)
_CHAT = re.compile(r"^\s*(?:hi|hello|hey|good (?:morning|afternoon|evening)|thanks?|thank you|bye|"
                   r"how are you|ok(?:ay)?|cool|great)\b", re.I)
_WRITING = re.compile(r"^\s*(?:please\s+)?(?:write|compose|draft|translate|summari[sz]e|rewrite|"
                      r"explain like|tell me a (?:joke|story)|make up|imagine)\b", re.I)
_SELF = re.compile(r"\b(?:my|mine|me|i|i'm|am i|do i)\b", re.I)
_DOCS_WORDS = re.compile(r"\b(?:polic(?:y|ies)|handbook|document|documents|manual|spec(?:ification)?s?|"
                         r"sheet|rules?|guidelines?|contract|terms)\b", re.I)
#: The question words and verbs that say nothing about the topic.
_GENERIC = {stem(w) for w in (
    "what", "which", "who", "whom", "where", "when", "why", "how", "much", "many", "long", "often",
    "soon", "quickly", "far", "does", "do", "did", "can", "could", "may", "must", "should", "would",
    "will", "tell", "know", "need", "needs", "have", "has", "get", "gets", "give", "use", "used",
    "allowed", "allow", "policy", "document", "documents", "say", "says")}
# Question type → the kind of value that answers it.
_AMOUNT_Q = re.compile(r"\bhow much\b|\b(?:cost|costs|price|fee|fees|budget|limit|allowance|"
                       r"per diem|reimburs\w*|salary|rate)\b", re.I)
_NUMBER_Q = re.compile(r"\bhow (?:many|long|often|soon|quickly|far|big|large|heavy|old|fast)\b|"
                       r"\bwhen\b|\bwhat time\b|\bwhich (?:number|extension)\b|\bweigh\b|"
                       r"\b(?:range|how)\b.*\btemperature\b", re.I)
_NAME_Q = re.compile(r"^\s*(?:who|whom|whose|where)\b|\bwhat(?:'s| is) (?:my|the|his|her) name\b", re.I)
_YES_NO = re.compile(r"^\s*(?:is|are|am|was|were|do|does|did|can|could|may|might|must|shall|should|"
                     r"will|would|has|have|had)\b", re.I)
_WHICH_Q = re.compile(r"^\s*(?:which|what (?:kinds?|types?|sorts?) of)\b", re.I)
_TIME_WORDS = re.compile(r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|"
                         r"weekends?|daily|weekly|monthly|yearly|every|never|always|night|morning)\b",
                         re.I)
_NUMWORD = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
            "fifty|hundred")
_NUMBER_WORDS = re.compile(rf"\b(?:{_NUMWORD}|half|halved|double|once|twice)\b", re.I)
# Qualifier pairs: a question bound to one side rejects a sentence bound only to the other.
_OPPOSITES = [("within", "outside"), ("inside", "outside"), ("under", "over"), ("below", "above"),
              ("less", "more"), ("shorter", "longer"), ("before", "after"), ("minimum", "maximum"),
              ("domestic", "international"), ("capital", "other"), ("weekdays", "weekends")]
_UNIT = r"(?:hours?|hrs?|days?|weeks?|months?|years?|minutes?|mins?|nights?|km|kilometres?|miles?)"
_Q_AMOUNT = re.compile(rf"\b(\d+(?:\.\d+)?|{_NUMWORD})[\s-]*({_UNIT})\b", re.I)
_UPPER = re.compile(rf"\b(?:under|less than|shorter than|below|up to|at most|within)\s+(\d+(?:\.\d+)?)"
                    rf"\s*({_UNIT})", re.I)
_LOWER = re.compile(rf"\b(?:over|more than|longer than|above|at least|from)\s+(\d+(?:\.\d+)?)\s*({_UNIT})"
                    rf"|(\d+(?:\.\d+)?)\s*({_UNIT})\s+or (?:longer|more)", re.I)
_WORD_VALUES = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20,
                "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100}


@dataclass(frozen=True)
class Candidate:
    """One sentence that might answer: a document sentence (``source_id`` "1", "2", …
    as cited in the prompt) or a stored fact (``fact-3``)."""

    text: str
    source_id: str
    kind: Literal["document", "fact"]
    title: str = ""
    section: str = ""
    date: str | None = None


@dataclass(frozen=True)
class AnswerPlan:
    """What the reply does: ``lead`` with ``text`` (the quote) and let the model add,
    ``refuse`` with ``text`` (no model call), or leave it to the ``model``."""

    action: Action
    text: str = ""
    quote: Candidate | None = None
    score: float = 0.0
    reason: str = ""


def _unit(word: str) -> str:
    w = word.lower().rstrip("s")
    return {"hr": "hour", "min": "minute", "kilometre": "km"}.get(w, w)


def _value(raw: str) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return float(_WORD_VALUES.get(raw.lower(), 0)) or None


def candidates(snippets: Sequence[Mapping[str, Any]]) -> list[Candidate]:
    """Every document sentence (with the heading above it) and every fact shown."""
    out: list[Candidate] = []
    for snip in snippets:
        sid, text = str(snip.get("id") or ""), str(snip.get("text") or "")
        if sid.startswith("fact-"):
            out.append(Candidate(" ".join(text.split()), sid, "fact", date=snip.get("date")))
        elif sid.isdigit():
            section = ""
            for sentence in split_sentences(text):
                if sentence.startswith("#"):
                    section = sentence.lstrip("#").strip()
                    continue
                if len(tokens(sentence)) >= 3:
                    out.append(Candidate(sentence, sid, "document", str(snip.get("source") or ""),
                                         section))
    return out


def _has_value(question: str, text: str) -> bool:
    """Whether ``text`` carries the kind of value the question's type asks for (a yes/no
    question asks for none)."""
    has_number = bool(numbers(text) or _NUMBER_WORDS.search(text))
    if _YES_NO.match(question):
        return True
    if _WHICH_Q.match(question):  # "which protocols?" → a name or a number the question lacks
        asked = {t.lower() for t in tokens(question)}
        return has_number or any(t[:1].isupper() and t.lower() not in asked and t.lower() not in STOP
                                 for t in tokens(text))
    if _AMOUNT_Q.search(question) and not re.search(r"\bhow (?:many|long|often)\b", question, re.I):
        return has_number
    if _NUMBER_Q.search(question):
        return has_number or bool(_TIME_WORDS.search(text))
    if _NAME_Q.search(question):
        return bool(re.search(r"(?<!^)(?<![.!?] )\b[A-Z][a-z]+", text)) or bool(
            re.search(r"\b(?:director|officer|manager|desk|team|department|head)\b", text, re.I))
    return True


def _qualifier_fit(question: str, text: str) -> float:
    """Multiplier for how the sentence's condition fits the question's: opposite side or
    an excluded number → penalty; a range holding the question's number → bonus."""
    q_words, s_words = {w.lower() for w in tokens(question)}, {w.lower() for w in tokens(text)}
    for a, b in _OPPOSITES:
        for mine, other in ((a, b), (b, a)):
            if mine in q_words and other in s_words and mine not in s_words:
                return QUALIFIER_PENALTY
    asked = [(v, _unit(m[2])) for m in _Q_AMOUNT.finditer(question) if (v := _value(m[1])) is not None]
    if not asked:
        return 1.0
    fit = 1.0
    for value, unit in asked:
        for m in _UPPER.finditer(text):
            if _unit(m[2]) == unit:
                fit = 1.0 + RANGE_BONUS if value < float(m[1]) else QUALIFIER_PENALTY
        for m in _LOWER.finditer(text):
            bound, bound_unit = (m[1], m[2]) if m[1] else (m[3], m[4])
            if _unit(bound_unit) == unit:
                fit = 1.0 + RANGE_BONUS if value >= float(bound) else QUALIFIER_PENALTY
    return fit


def second_person(fact: str) -> str:
    """"The user lives in Oslo." → "you live in Oslo." (how facts are stored → how they
    are said back)."""
    text = fact.strip()
    rules = [(r"^the user's\b", "your"), (r"^the user is\b", "you are"), (r"^the user was\b", "you were"),
             (r"^the user has\b", "you have"), (r"^the user does\b", "you do"),
             (r"^the user (\w+?)(?:es)\b(?=\s)", None), (r"^the user (\w+?)s\b", r"you \1")]
    for pattern, repl in rules:
        m = re.match(pattern, text, re.I)
        if not m:
            continue
        if repl is None:  # "watches" → "watch", "goes" → "go"
            base = m[1] if re.search(r"(?:ch|sh|ss|x|o)$", m[1]) else m[1] + "e"
            return "you " + base + text[m.end():]
        return re.sub(pattern, repl, text, count=1, flags=re.I)
    return text


def _where(c: Candidate) -> str:
    title = f'"{c.title}"' if c.title else "your documents"
    return f"{title} ({c.section})" if c.section and c.section.lower() != c.title.lower() else title


def _lead_text(best: Candidate) -> str:
    """The lead: where it comes from on a line of its own (no claim: the checker skips it),
    then the verbatim sentence with its citation."""
    if best.kind == "fact":
        said = second_person(best.text).rstrip(".")
        return f"Here is what you told me: {said}."
    return f"Here is what {_where(best)} says:\n“{best.text}” [{best.source_id}]"


def _verified(best: Candidate, snippets: Sequence[Mapping[str, Any]]) -> bool:
    """The quoted sentence is verbatim in the source it cites (by construction; this keeps
    it so). Whether it *answers* is ``rank``'s job; the citation guard checks it again
    after the turn like any answer. Facts are the user's own statements: no source."""
    if best.kind == "fact":
        return True
    flat = " ".join(best.text.split())
    return any(str(s.get("id")) == best.source_id and flat in " ".join(str(s.get("text") or "").split())
               for s in snippets)


def _encoder() -> Any:
    from memory.minilm import get_encoder

    return get_encoder()


def rank(question: str, cands: Sequence[Candidate], *, encoder: Any = None) -> list[tuple[float, Candidate]]:
    """Candidates that could answer ``question``, best first, each with its relevance:
    cosine and word coverage, times the value-frame and qualifier checks. A candidate
    missing the question's focus words is left out."""
    q = " ".join(question.split())
    if not cands:
        return []
    encoder = encoder or _encoder()
    texts = [q, *(f"{c.section}: {c.text}" if c.section else c.text for c in cands)]
    vecs = np.asarray(encoder.encode(texts), dtype=np.float32)
    qv, cand_v = vecs[0], vecs[1:]
    q_stems = content_stems(q) - _GENERIC
    names = name_stems(q)
    scored: list[tuple[float, Candidate]] = []
    for c, v in zip(cands, cand_v, strict=True):
        own = content_stems(f"{c.section} {c.text}")
        if c.kind == "fact":
            own |= content_stems(second_person(c.text))
        have = own | content_stems(c.title)
        # The question's focus (its words that are not names nor the document's title) must
        # be in the sentence or its section: "which colours?" is not answered by the price.
        focus = q_stems - names - content_stems(c.title)
        if focus and not focus & own:
            continue
        coverage = len(q_stems & have) / len(q_stems) if q_stems else 0.5
        score = W_COS * float(v @ qv) + (1 - W_COS) * coverage
        if not _has_value(q, c.text):
            score *= FRAME_PENALTY
        score *= _qualifier_fit(q, c.text)
        scored.append((round(score, 4), c))
    scored.sort(key=lambda sc: -sc[0])
    return scored


def plan_answer(question: str, snippets: Sequence[Mapping[str, Any]], *, encoder: Any = None,
                lead_threshold: float = LEAD_THRESHOLD,
                topic_threshold: float = TOPIC_THRESHOLD) -> AnswerPlan:
    """The plan for ``question`` given the turn's snippets (``id``, ``text``, ``source``,
    ``date``: numbered document sources and ``fact-N`` facts, as the prompt showed them)."""
    q = " ".join(question.split())
    if not q or len(q) > MAX_QUESTION_CHARS or _CHAT.match(q) or _WRITING.match(q) or not _QUESTION.search(q):
        return AnswerPlan("model", reason="not a question about documents or facts")
    cands = candidates(snippets)
    chunks = [str(s.get("text") or "") for s in snippets if str(s.get("id") or "").isdigit()]
    about_self = bool(_SELF.search(q)) and not _DOCS_WORDS.search(q)
    if not cands and not about_self:
        return AnswerPlan("model", reason="nothing shown to answer from")
    encoder = encoder or _encoder()
    vecs = np.asarray(encoder.encode([q, *chunks]), dtype=np.float32)
    qv, chunk_v = vecs[0], vecs[1:]
    scored = rank(q, cands, encoder=encoder)
    for score, best in scored[:3]:
        if score < lead_threshold:
            break
        if _verified(best, snippets):
            return AnswerPlan("lead", _lead_text(best), best, score, "a shown sentence answers it")
    topic = max((float(v @ qv) for v in chunk_v), default=0.0)
    top = scored[0][0] if scored else 0.0
    if chunks and (topic >= topic_threshold or _DOCS_WORDS.search(q)):
        return AnswerPlan("refuse", _refusal(NOT_FOUND_DOCS, scored), None, top,
                          f"on the documents' topic (cosine {topic:.2f}) but no sentence answers it")
    if about_self:
        return AnswerPlan("refuse", NOT_FOUND_SELF, None, top, "about the user; no stored fact answers it")
    return AnswerPlan("model", score=top, reason="not about the documents shown")


def _refusal(head: str, scored: Sequence[tuple[float, Candidate]]) -> str:
    """The refusal, and the nearest document passage when one is at least loosely related."""
    near = next((c for s, c in scored if c.kind == "document" and s >= LEAD_THRESHOLD / 2), None)
    if near is None:
        return head
    return f"{head} Here is the nearest passage, in {_where(near)}:\n“{near.text}” [{near.source_id}]"
