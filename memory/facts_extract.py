"""Candidate facts from one user message: deterministic rules first, a model optionally.

Why rules: the default local model (135M parameters) extracts facts unreliably, so
nothing may depend on it. The rules cover the statements people make about
themselves most often ("I live in / moved to", "my name is", "I work at", "I like",
"I'm allergic to", "my X is Y"), their negations ("I no longer live in X") and
requests to forget ("forget where I live"). A model, when configured, only adds
candidates (through ``assistant.extract``: schema-validated, grammar-constrained on
the local model); it may delete only when the message itself asks to forget or negates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "FORGET_ALL",
    "MULTI_VALUED",
    "SYNONYMS",
    "Candidate",
    "ExtractedFacts",
    "extract_rules",
    "fact_text",
    "forget_request",
    "norm_key",
    "norm_value",
    "says_forget",
]

#: Attributes a person can have several values of at once; the rest hold one value,
#: so a new value supersedes the old one.
MULTI_VALUED = frozenset({"likes", "dislikes", "allergy", "pet", "language", "hobby"})
#: Adding one of these values contradicts the same value under the other key.
CONTRADICTS = {"likes": "dislikes", "dislikes": "likes"}
FORGET_ALL = "*"


class Candidate(BaseModel):
    """One fact the user stated (``add``), asked us to forget (``forget``) or said is no
    longer true (``retract``, e.g. "I don't live in Porto any more")."""

    key: str = Field(description="attribute, e.g. home, name, employer, job, likes, allergy",
                     min_length=1, max_length=60)
    value: str = Field("", description="the attribute's value; empty to forget the whole key",
                       max_length=200)
    op: Literal["add", "forget", "retract"] = "add"
    confidence: float = Field(0.6, ge=0, le=1)


class StatedFact(BaseModel):
    """One fact as a model reports it (no confidence: small models get numbers wrong)."""

    key: str = Field(description="attribute, e.g. home, name, employer, job, likes, allergy",
                     min_length=1, max_length=60)
    value: str = Field("", description="the value, copied from the message", max_length=200)
    op: Literal["add", "forget", "retract"] = "add"


class ExtractedFacts(BaseModel):
    """What a model returns: facts the USER states about themself in the message."""

    facts: list[StatedFact] = Field(default_factory=list, max_length=12)


_TEMPLATES = {
    "home": "The user lives in {v}.", "name": "The user's name is {v}.",
    "employer": "The user works at {v}.", "job": "The user works as {v}.",
    "likes": "The user likes {v}.", "dislikes": "The user dislikes {v}.",
    "allergy": "The user is allergic to {v}.", "pet": "The user has {v}.",
    "language": "The user speaks {v}.", "age": "The user is {v} years old.",
    "diet": "The user is {v}.", "origin": "The user is from {v}.",
    "hobby": "The user's hobby is {v}.",
}


#: Other names a model gives the attributes the rules know.
SYNONYMS = {
    "location": "home", "city": "home", "residence": "home", "address": "home",
    "lives in": "home", "home city": "home", "current city": "home", "hometown": "origin",
    "company": "employer", "workplace": "employer", "work": "employer", "employer name": "employer",
    "occupation": "job", "profession": "job", "job title": "job", "role": "job",
    "like": "likes", "preference": "likes", "preferences": "likes", "interests": "likes",
    "dislike": "dislikes", "allergies": "allergy", "pets": "pet", "languages": "language",
    "hobbies": "hobby", "user name": "name", "full name": "name", "first name": "name",
}


def known_key(key: str, message: str) -> bool:
    """Is ``key`` an attribute we know, or one the message names ("my <key>")? Keeps a
    weak model's keys like "Maria" (from "my sister Maria ...") out of memory."""
    said = " ".join(message.lower().replace("\u2019", "'").split())
    return key in _TEMPLATES or key in MULTI_VALUED or f"my {key}" in said


def norm_key(key: str) -> str:
    """``"Home City"`` -> ``"home"``: lower case, no possessives, canonical synonyms."""
    key = re.sub(r"'s\b", "", key.lower())
    key = re.sub(r"[^a-z0-9]+", " ", key).strip()[:60]
    return SYNONYMS.get(key, key)


_FILLER = re.compile(r"\b(?:a lot|very much|so much|too|as well|anymore|any more|now|these days|"
                     r"nowadays|really|though|actually|btw|by the way|please)\b", re.IGNORECASE)


def norm_value(value: str) -> str:
    """Compare values without case, articles, filler words and punctuation."""
    value = _FILLER.sub(" ", value.lower())
    value = re.sub(r"\b(?:the|a|an|my)\b", " ", value)
    return " ".join(re.sub(r"[^\w\s'-]", " ", value).split())


def fact_text(key: str, value: str) -> str:
    template = _TEMPLATES.get(key)
    return template.format(v=value) if template else f"The user's {key} is {value}."


# -- sentences and values -----------------------------------------------------------
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+|,\s*(?:and|but)\s+"
                        r"|\s+(?:and|but) (?=i\b|i'|my\b)", re.IGNORECASE)
_STOP = re.compile(r"\s*(?:,|;|\.(?:\s|$)|!|\?|\s(?:and|but|because|since|so|with|for the|"
                   r"which|who|where|when|until|now|anymore|any more|these days|though|"
                   r"for (?:a|about|the|\d)|right now|at the moment|yesterday|today|recently|"
                   r"earlier|(?:last|this|next) (?:week|month|year|summer|winter|spring|autumn|"
                   r"fall|weekend)|(?:a|two|three|few|\d+) \w+ ago|in (?:19|20)\d\d)\b)", re.IGNORECASE)
_QUESTION = re.compile(r"^(?:do|does|did|am|is|are|was|were|where|what|who|which|when|why|how|"
                       r"can|could|would|should|will|have|has)\b", re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:not|never|no longer|don't|do not|didn't|isn't|aren't|am not|'m not)\b",
                      re.IGNORECASE)


def _value(rest: str, max_words: int = 6) -> str:
    """The phrase at the start of ``rest`` up to the first clause boundary."""
    cut = _STOP.search(rest)
    value = (rest[:cut.start()] if cut else rest).strip(" \"'.,!?;:")
    words = value.split()
    return " ".join(words[:max_words]) if 0 < len(words) <= max_words + 2 else ""


def _sentences(text: str) -> Iterator[str]:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    for part in _SENTENCES.split(text):
        part = part.strip()
        if part:
            yield part


I_AM = r"i(?:'m| am)"
_ADD: list[tuple[str, re.Pattern[str], float]] = [
    ("name", re.compile(r"\b(?:my name is|call me|" + I_AM + r" called)\s+(?P<v>.+)", re.IGNORECASE), 0.95),
    ("home", re.compile(r"\bi(?:'ve| have)?\s+(?:just |recently |finally )?(?:moved|relocated)"
                        r"(?: from .+?)? to\s+(?P<v>.+)", re.IGNORECASE), 0.95),
    ("home", re.compile(r"\b(?:i (?:now |currently |still )?live|" + I_AM +
                        r" (?:now |currently )?(?:living|based|staying))"
                        r" in\s+(?P<v>.+)", re.IGNORECASE), 0.9),
    ("home", re.compile(r"\bmy (?:home|house|flat|apartment) is in\s+(?P<v>.+)", re.IGNORECASE), 0.85),
    ("origin", re.compile(r"\b" + I_AM + r" (?:originally )?from\s+(?P<v>.+)", re.IGNORECASE), 0.8),
    ("employer", re.compile(r"\bi (?:now |currently )?work (?:at|for)\s+(?P<v>.+)", re.IGNORECASE), 0.9),
    ("employer", re.compile(r"\b(?:" + I_AM + r" employed (?:at|by)|i(?:'ve| have)? "
                            r"(?:just )?(?:joined"
                            r"|started (?:working )?at))\s+(?P<v>.+)", re.IGNORECASE), 0.85),
    ("job", re.compile(r"\bi work as (?:an? )?(?P<v>.+)", re.IGNORECASE), 0.9),
    ("allergy", re.compile(r"\b" + I_AM + r" (?:very |severely |also )?allergic to\s+(?P<v>.+)",
                           re.IGNORECASE), 0.95),
    ("allergy", re.compile(r"\bi have an? (?P<v>[\w -]+?) allergy\b", re.IGNORECASE), 0.9),
    ("dislikes", re.compile(r"\bi (?:really )?(?:hate|dislike|can't stand|cannot stand|"
                            r"don't like|do not like)\s+(?P<v>.+)", re.IGNORECASE), 0.85),
    ("likes", re.compile(r"\bi (?:really |also |absolutely )?(?:like|love|enjoy|adore)\s+(?P<v>.+)",
                         re.IGNORECASE), 0.85),
    ("language", re.compile(r"\bi (?:can )?speak\s+(?P<v>.+)", re.IGNORECASE), 0.8),
    ("age", re.compile(r"\b" + I_AM + r" (?P<v>\d{1,3}) (?:years? old|yo)\b", re.IGNORECASE), 0.9),
    ("diet", re.compile(r"\b" + I_AM + r" (?:an? )?(?P<v>vegetarian|vegan"
                                       r"|pescatarian)\b", re.IGNORECASE), 0.9),
    ("pet", re.compile(r"\bi (?:have|own|got) (?P<v>an? (?:dog|cat|rabbit|parrot|hamster|horse|"
                       r"fish|bird|turtle|snake)(?: (?:named|called) \w+)?)", re.IGNORECASE), 0.85),
    ("*my", re.compile(r"\bmy (?P<k>[a-z][a-z' ]{1,30}?) (?:is|are)"
                       r" (?!not\b|n't)(?P<v>.+)", re.IGNORECASE), 0.75),
]
_WITHDRAW: list[tuple[str, re.Pattern[str]]] = [
    ("home", re.compile(r"\bi (?:don't|do not|no longer) live in\s+(?P<v>.+)", re.IGNORECASE)),
    ("home", re.compile(r"\bi(?:'ve| have)? moved (?:away from|out of|from)\s+(?P<v>(?!.*\bto\b).+)",
                        re.IGNORECASE)),
    ("employer", re.compile(r"\bi (?:don't|do not|no longer) work (?:at|for)\s+(?P<v>.+)", re.IGNORECASE)),
    ("employer", re.compile(r"\bi (?:quit|left) (?:my job at |my job with |working at |working for )"
                            r"?(?P<v>.+)", re.IGNORECASE)),
    ("allergy", re.compile(r"\b" + I_AM + r" (?:not|no longer) allergic to\s+(?P<v>.+)", re.IGNORECASE)),
    ("likes", re.compile(r"\bi (?:no longer|don't|do not) (?:like|love|enjoy)\s+(?P<v>.+)", re.IGNORECASE)),
    ("*my", re.compile(r"\bmy (?P<k>[a-z][a-z' ]{1,30}?) (?:is not|isn't|are not|aren't) (?P<v>.+)",
                       re.IGNORECASE)),
]
_MY_SKIP = re.compile(r"^(?:question|point|guess|bad|pleasure|turn|mistake|fault|problem|"
                      r"answer|plan|idea)$", re.IGNORECASE)

_FORGET = re.compile(
    r"^(?:(?:please|ok|okay|also|and|now|hey|so)[, ]+)*(?:(?:can|could|would|will) you "
    r"(?:please )?)?(?:please )?(?:forget|delete|erase|remove"
    r"|stop remembering)\b\s*(?P<t>.*)$", re.IGNORECASE)
_FORGET_KEYS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:where i (?:live|am living|'m living|stay)|my (?:address|home|city|"
                r"location|town|flat|apartment|house))\b", re.IGNORECASE), "home"),
    (re.compile(r"\b(?:where i work"
                r"|my (?:job|employer|work|workplace|company))\b", re.IGNORECASE), "employer"),
    (re.compile(r"\bmy (?:job title|profession|occupation|role)\b", re.IGNORECASE), "job"),
    (re.compile(r"\bmy name\b|\bwhat i'?m called\b", re.IGNORECASE), "name"),
    (re.compile(r"\bmy age\b|\bhow old i am\b", re.IGNORECASE), "age"),
    (re.compile(r"\b(?:my )?allerg(?:y|ies)\b", re.IGNORECASE), "allergy"),
    (re.compile(r"\bwhere i'?m from\b|\bwhere i come from\b", re.IGNORECASE), "origin"),
    (re.compile(r"^(?:everything|all)(?: (?:about me|you know(?: about me)?|i (?:told|said)"
                r"(?: you)?))?\W*$", re.IGNORECASE), FORGET_ALL),
]


def says_forget(text: str) -> bool:
    """Does the message ask to forget something or withdraw a statement?"""
    return any(_FORGET.match(s) or _NEGATED.search(s) for s in _sentences(text))


def forget_request(sentence: str) -> list[Candidate] | None:
    """``None`` unless ``sentence`` asks to forget; else what to forget (possibly [])."""
    match = _FORGET.match(sentence.strip())
    if not match:
        return None
    target = re.sub(r"^(?:about|that|the fact that|what i (?:said|told you) about|"
                    r"everything about)\s+", "", match["t"].strip(" .!?"), flags=re.IGNORECASE)
    for pattern, key in _FORGET_KEYS:
        if pattern.search(target):
            return [Candidate(key=key, op="forget", confidence=1.0)]
    # "forget that I like sushi": whatever that clause would state, withdrawn.
    stated = [c for c in _statements(target) if c.op == "add"]
    if stated:
        return [c.model_copy(update={"op": "forget", "confidence": 1.0}) for c in stated]
    mine = re.match(r"^my ([a-z][a-z' ]{1,30})$", target, re.IGNORECASE)
    if mine:
        return [Candidate(key=norm_key(mine[1]), op="forget", confidence=1.0)]
    return []


def _statements(sentence: str) -> list[Candidate]:
    if sentence.endswith("?") or _QUESTION.match(sentence):
        return []
    found: list[Candidate] = []
    for key, pattern in _WITHDRAW:
        if (m := pattern.search(sentence)) and (value := _value(m["v"])):
            k = norm_key(m["k"]) if key == "*my" else key
            found.append(Candidate(key=k, value=value, op="retract", confidence=0.9))
    if found:
        return found  # a negated sentence states nothing positive ("I don't like X")
    for key, pattern, confidence in _ADD:
        if not (m := pattern.search(sentence)):
            continue
        if key == "*my":
            k = norm_key(m["k"])
            # "my job is boring" is no job title: known attributes need their own phrasing.
            if _MY_SKIP.match(k) or k in _TEMPLATES or m["k"].lower() in SYNONYMS \
                    or any(c.key == k for c in found):
                continue
            key = k
        value = _value(m["v"], max_words=4 if key in ("name", "home", "origin") else 6)
        if value and not any(c.key == key for c in found):
            found.append(Candidate(key=key, value=value, confidence=confidence))
    return found


def extract_rules(text: str) -> list[Candidate]:
    """Every candidate the rules find in ``text`` (one user message), in order."""
    out: list[Candidate] = []
    for sentence in _sentences(text):
        forget = forget_request(sentence)
        out.extend(forget if forget is not None else _statements(sentence))
    return out
