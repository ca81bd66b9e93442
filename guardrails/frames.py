"""Binding-aware checks: is each value of a claim bound to the same qualifier as in the source?

Why: "The per diem outside the EU is 45 EUR" has every word and number of "The daily per
diem is 45 EUR within the EU and 60 EUR outside the EU." -- overlap and embeddings call
it supported. The error is the *binding*: 45 belongs to "within", "outside" to 60. This is
the commonest error in answers about policies, price lists and specifications.

How: a source sentence is cut into *units* (clauses joined by and / but / ; / , / while /
otherwise); a unit that is only a value and a qualifier ("60 EUR outside the EU") inherits
the plain terms of the first unit (ellipsis). Each unit is a frame: a bag of terms where a
value is a number (``#45``), a range direction (under / less than / up to -> ``<``,
over / more than / longer / at least -> ``>``), inside/outside (``@in`` / ``@out``) or a
class/tier/group word (economy, express, gold, children, weekend, ...). Two units are
*rivals* when both hold a value and they share a term (same frame, other values). A claim
part is checked against its best unit: a claim term that unit lacks but a rival has is a
wrong binding. A claim's "over 6 hours" against a source's "under 6 hours" refers to the
complement (the rival saying "longer"), so its number is not counted as bound there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guardrails.claims import STOP, numbers, split_sentences, stem

__all__ = ["Binding", "Unit", "bound_unit", "check_binding", "decompose", "frame_terms", "units"]

_LO = {"under", "below", "less", "fewer", "shorter", "cheaper", "lower", "smaller", "younger", "max",
       "maximum", "most", "until", "before", "upto", "within_n", "beneath", "sub"}
_HI = {"over", "above", "more", "longer", "greater", "exceeding", "exceed", "exceeds", "beyond", "least",
       "minimum", "min", "older", "higher", "larger", "bigger", "after", "plus", "longest", "later"}
_IN = {"within", "inside", "domestic", "internal"}
_OUT = {"outside", "abroad", "international", "external"}
_TIERS = {"economy", "business", "first", "premium", "standard", "express", "basic", "gold", "silver",
          "bronze", "platinum", "free", "pro", "enterprise", "plus", "starter", "junior", "senior",
          "adult", "adults", "child", "children", "kid", "kids", "student", "students", "infant",
          "infants", "teen", "teens", "member", "members", "guest", "guests", "weekday", "weekdays",
          "weekend", "weekends", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
          "sunday", "morning", "evening", "night", "peak", "offpeak", "off-peak", "small", "medium",
          "large", "overnight", "ground", "priority", "regular", "daily", "weekly", "monthly", "annual",
          "yearly", "full", "part-time", "full-time", "fulltime", "parttime", "domestic",
          "international", "staff", "manager", "managers", "contractor", "contractors"}
_VALUE_TERMS = {stem(t) for t in _TIERS}
_CUT = re.compile(r"\s*(?:;|,?\s+\b(?:and|but|while|whereas|otherwise|or else)\b|,(?=\s))\s*", re.IGNORECASE)
_TIME = re.compile(r"\b(\d{1,2})[:.](\d{2})\b")


def _terms(text: str) -> tuple[set[str], set[str]]:
    """(value terms, plain terms) of a piece of text."""
    low = text.lower()
    low = re.sub(r"\bup to\b", " upto ", low)
    low = re.sub(r"\bat most\b|\bno more than\b|\bnot exceeding\b", " max ", low)
    low = re.sub(r"\bat least\b|\bor more\b|\band (?:over|above|up)\b|\bor longer\b", " least ", low)
    low = re.sub(r"\bwithin(?=\s+(?:\d|one|two|three|four|five|six|seven|eight|nine|ten|a |an ))",
                 "within_n", low)
    values: set[str] = set()
    plain: set[str] = set()
    for h, m in _TIME.findall(low):
        values.add(f"#t{int(h)}:{m}")
    low = _TIME.sub(" ", low)
    for val, _hedged in numbers(low):
        if not (1000 <= val <= 2100 and val == int(val)):  # a year dates, it is not a bound value
            values.add(f"#{val:g}")
    for tok in re.findall(r"[a-z][a-z_\-]*", low):
        if tok in _LO:
            values.add("<")
        elif tok in _HI:
            values.add(">")
        elif tok in _IN:
            values.add("@in")
        elif tok in _OUT:
            values.add("@out")
        elif stem(tok) in _VALUE_TERMS:
            values.add(stem(tok))
        elif tok not in STOP and len(tok) > 1:
            plain.add(stem(tok))
    plain -= {stem(w) for w in ("than", "to", "is", "are")}
    return values, plain


def frame_terms(text: str) -> tuple[set[str], set[str]]:
    """(value terms, plain terms) of ``text``: what a frame is made of (public form)."""
    return _terms(text)


@dataclass(frozen=True)
class Unit:
    """One clause of a source sentence as a frame; ``start``/``end`` locate its sentence."""

    text: str
    values: frozenset[str]
    plain: frozenset[str]
    sentence: int
    start: int
    end: int

    lead: frozenset[str] = frozenset()

    @property
    def terms(self) -> frozenset[str]:
        return self.values | self.plain


def _clauses(sentence: str) -> list[str]:
    return [c for c in _CUT.split(sentence) if c and re.search(r"\w", c)]


def _lead(piece: str) -> frozenset[str]:
    """The clause's own first content word: its subject ("accessories a 6-month warranty")."""
    _, plain = _terms(" ".join(piece.split()[:2]))
    return frozenset(plain)


def _frames(pieces: list[str]) -> list[tuple[str, set[str], set[str]]]:
    """Terms per clause, elliptical clauses filled in from the first one."""
    out: list[tuple[str, set[str], set[str]]] = []
    for i, piece in enumerate(pieces):
        values, plain = _terms(piece)
        if i and out and len(plain) <= 2 and values:
            plain |= out[0][2] | out[-1][2]  # "... and 60 EUR outside the EU": the per diem, again
            if not any(v[0].isalpha() for v in values):  # "... and costs 12 EUR": still express
                values |= {v for v in out[-1][1] if v[0].isalpha()}
        out.append((piece, values, plain))
    return out


def units(text: str) -> list[Unit]:
    """Every clause of every sentence of ``text`` as a frame, with its sentence's span."""
    out: list[Unit] = []
    cursor = 0
    for n, sent in enumerate(split_sentences(text)):
        start = text.find(sent, cursor)
        start = cursor if start < 0 else start
        end = start + len(sent)
        cursor = end
        for piece, values, plain in _frames(_clauses(sent)):
            out.append(Unit(piece, frozenset(values), frozenset(plain), n, start, end, _lead(piece)))
    return out


def decompose(claim: str) -> list[str]:
    """Atomic parts of a compound claim: clauses that each carry content of their own, an
    elliptical one ("and 60 EUR outside the EU") completed with the first clause's head."""
    pieces = _clauses(claim)
    if len(pieces) < 2:
        return [claim]
    parts: list[str] = []
    for i, piece in enumerate(pieces):
        values, plain = _terms(piece)
        if not values and len(plain) < 2:
            if parts:
                parts[-1] = f"{parts[-1]}, {piece}"
            continue
        if i and parts and len(plain) <= 2 and values:
            head = re.split(r"\b(?:is|are|costs?|takes?|gets?|pays?)\b", pieces[0], maxsplit=1)
            piece = f"{head[0].strip()} {'is ' if len(head) > 1 else ''}{piece}".strip()
        parts.append(piece.strip())
    return parts or [claim]


@dataclass(frozen=True)
class Binding:
    """A wrong binding: ``term`` of the claim belongs to ``rival``, not to ``unit``."""

    term: str
    unit: Unit
    rival: Unit

    @property
    def evidence(self) -> Unit:
        """The unit that holds the claim's qualifier with its true value (shown to the user)."""
        return self.rival if not self.term.startswith("#") else self.unit


def _rivals(best: Unit, pool: list[Unit]) -> list[Unit]:
    return [u for u in pool if u is not best and u.values and abs(u.sentence - best.sentence) <= 1
            and (u.plain & best.plain or {v for v in u.values if v[0].isalpha()} & best.values
                 or (u.values & best.values))]


def bound_unit(claim: str, source_units: list[Unit]) -> Unit | None:
    """A unit holding every value of ``claim`` (two or more): the claim's frame, whole."""
    values, _ = _terms(claim)
    if len(values) < 2:
        return None
    return next((u for u in source_units if values <= u.values), None)


def check_binding(claim: str, source_units: list[Unit]) -> Binding | None:
    """The first wrong binding of ``claim`` (one atomic part) against ``source_units``."""
    values, plain = _terms(claim)
    if not values or not source_units:
        return None
    low = re.sub(r"\bup to\b", "upto", claim.lower())
    nums = {f"#{val:g}" for m in re.finditer(r"\b([a-z]+)\s+(?:than\s+)?(\d[\d,.]*)", low)
            if m.group(1) in _LO | _HI for val, _ in numbers(m.group(2))}
    # A claim's "> 6" where the sources only say "< 6": the number is the threshold of the
    # complement, so it does not bind the claim to the unit that states it.
    direction = values & {"<", ">"}
    loose: set[str] = set()
    for num in nums:
        with_num = [u for u in source_units if num in u.values]
        if direction and with_num and not any(direction & u.values for u in with_num) and any(
                u.values & ({"<", ">"} - direction) for u in with_num) and any(
                direction & u.values for u in source_units):
            loose.add(num)
    for num in nums - loose:  # "children over 12" where the source only says "under 12"
        with_num = [u for u in source_units if num in u.values]
        if direction and with_num and not any(direction & u.values for u in with_num) and not any(
                direction & u.values for u in source_units):
            clash = next((u for u in with_num if u.values & ({"<", ">"} - direction)), None)
            if clash is not None:
                return Binding(next(iter(direction)), clash, clash)
    wanted = (values | plain) - loose
    anchored = [u for u in source_units if u.values & (values - loose)]
    if not anchored:
        return None
    best = max(anchored, key=lambda u: (len(wanted & u.values), len(wanted & u.terms), -len(u.terms)))
    missing = wanted - best.terms
    missing -= {t for u in source_units if u.values & loose for t in u.plain}  # "6 *hours*"
    if not missing:
        return None
    for rival in _rivals(best, source_units):
        for term in sorted(missing & rival.terms, key=lambda t: (t not in rival.values, t)):
            subject = rival.sentence == best.sentence and term in rival.lead - best.plain
            if term in rival.values or subject:
                return Binding(term, best, rival)
    return None
