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
       "maximum", "until", "before", "upto", "within_n", "beneath", "sub"}
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
#: Tier stems a common word shares ("evening" / "even"): a tier only when the tier word
#: itself is written. (Time units sharing a stem with "yearly", "monthly", ... stay values:
#: made plain, they cost a false alarm on the held-out old split, see docs/benchmarks.md.)
_COLLIDING = _VALUE_TERMS & {stem("even")}
_CUT = re.compile(r"\s*(?:;|,?\s+\b(?:and|but|while|whereas|otherwise|or else|as well as)\b|,(?=\s))\s*",
                  re.IGNORECASE)
#: A clock time: "7:30", or "7.30" only next to am / pm / h or in a range ("7.00-19.00");
#: "4.90 EUR" and "0.45 euros" are amounts.
_TIME = re.compile(r"\b(\d{1,2}):([0-5]\d)\b"
                   r"|\b(\d{1,2})\.([0-5]\d)\b(?=\s*(?:[ap]\.?m\b|h\b|[-\u2013]\s*\d{1,2}\.\d\d))"
                   r"|(?<=[-\u2013])\s*\b(\d{1,2})\.([0-5]\d)\b", re.IGNORECASE)
#: "between 20,000 and 80,000": the "and" of a range joins two bounds, not two clauses.
_RANGE_AND = re.compile(r"\bbetween\s+\S+(?:\s+[a-z%]+)?\s*$", re.IGNORECASE)
#: A comma piece that exemplifies, compares or changes the value before it ("..., such as
#: five years", "..., more than the next seven largest rivers combined", "..., up 6 percent
#: from a year earlier", "..., about 60% of which lies in Brazil", "..., most of them from
#: abroad", "..., whichever is higher") belongs to that clause.
_TAIL = re.compile(r"^(?:such as|like|including|e\.g\.|for (?:example|instance)|namely|especially|"
                   r"particularly|"
                   r"(?:\S+\s+){0,2}?(?:more|less|fewer|greater|higher|lower|bigger|smaller) than|"
                   r"(?:up|down)\s+(?:by\s+)?[$\u20ac\u00a3]?\d+(?:[.,]\d+)*|whichever|"
                   r"(?:\S+\s+){0,3}?(?:of\s+)?(?:which|whom|whose)\b|(?:\S+\s+){1,2}?of\s+(?:them|these|those)\b)\b",
                   re.IGNORECASE)
#: A sentence that opens with a prepositional phrase and a comma ("For most healthy adults,
#: ...", "On the Gold plan, ...") states the qualifier of the clause right after it (when
#: the phrase holds no number of its own).
_FRONTED = re.compile(r"^(?:for|in|on|at|during|with|without|from|after|before|by|within|outside|"
                      r"under|over|above|below|among|across)\b", re.IGNORECASE)
#: "iPhone 15", "Python 3.11", "priority 1", "zone 2": a number right after a Title-case or
#: camelCase word, or after a label word, names a thing (one plain term, like a name); it
#: is not a value bound to a qualifier (an amount, "Costs 4.90 EUR", stays one).
_NAMED_NUMBER = re.compile(r"\b([A-Za-z][a-z]+|[a-z]+[A-Z][A-Za-z]*)\s+(\d+(?:\.\d+)*)\b"
                           r"(?![.,:]\d|\s*[-\u2013]\s*\d|\s*(?:[ap]\.?m\b|%|percent\b|[A-Z]{3}\b|euros?\b|dollars?\b|pounds?\b|francs?\b))")
_LABELS = {"priority", "level", "tier", "zone", "class", "grade", "category", "type", "phase", "stage",
           "terminal", "gate", "platform", "step", "version", "band", "group", "round", "lane", "route",
           "severity", "sev"}


_ORDINALS = {w: str(n) for n, w in enumerate(
    ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"), start=1)}
_ORDINAL = re.compile(r"\b(?:(\d+)(?:st|nd|rd|th)|(" + "|".join(_ORDINALS) + r"))\b")
_EVENT_BOUND = re.compile(r"\b(?:until|till|before|after)\b(?!\s+(?:\S+\s+){0,2}?(?:[$\u20ac\u00a3]?\d|(?:"
                          + "|".join(("one", "two", "three", "four", "five", "six", "seven", "eight",
                                      "nine", "ten", "eleven", "twelve", "twenty", "thirty", "forty", "fifty",
                                      "sixty", "hundred", "noon", "midnight", "first", "second", "third",
                                      "january", "february", "march", "april", "may", "june", "july",
                                      "august", "september", "october", "november", "december")) + r")\b))")


def _name_number(m: re.Match[str]) -> str:
    word = m.group(1).lower()
    if word in _LABELS:
        return f"{word}_{m.group(2)}"
    if (m.group(1) == word or word in STOP or word in _LO | _HI | _IN | _OUT or word in _MONTHS
            or stem(word) in _VALUE_TERMS):
        return m.group(0)  # a plain lower-case word, a range word, a date or a tier: a value
    return f"{m.group(1)}_{m.group(2)}"


_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"}


def _terms(text: str) -> tuple[set[str], set[str]]:
    """(value terms, plain terms) of a piece of text."""
    low = _NAMED_NUMBER.sub(_name_number, text).lower()
    low = re.sub(r"\bup to\b", " upto ", low)
    # "until 1868", "after 2015": a range word on a year dates, it bounds no value.
    low = re.sub(r"\b(?:until|till|before|after|since|by|from|over|under|within|upto)\s+(?=(?:1\d|20)\d\d\b)",
                 " ", low)
    # "until possession is established", "after an initial period": a conjunction on an
    # event bounds no value; "until 5 pm", "after the first 30 minutes" do.
    low = _EVENT_BOUND.sub(" ", low)
    # "the 6th championship", "for the third time": an ordinal ranks, it is no count.
    low = _ORDINAL.sub(lambda m: f" ord_{_ORDINALS.get(m.group(2) or '', m.group(1))} ", low)
    low = re.sub(r"\bat most\b|\bno more than\b|\bnot exceeding\b", " max ", low)
    low = re.sub(r"\bat least\b|\bor more\b|\band (?:over|above|up)\b|\bor longer\b", " least ", low)
    low = re.sub(r"\bwithin(?=\s+(?:\d|one|two|three|four|five|six|seven|eight|nine|ten|a |an ))",
                 "within_n", low)
    # "beyond 6 hours" (or "beyond that", a value just named) bounds a value; "beyond the
    # EU" is outside it.
    low = re.sub(r"\bbeyond\b(?!\s+(?:\d|one|two|three|four|five|six|seven|eight|nine|ten|a |an |"
                 r"that|this|it|them|those))",
                 "outside", low)
    values: set[str] = set()
    plain: set[str] = set()
    for found in _TIME.findall(low):
        h, m = next((found[i], found[i + 1]) for i in (0, 2, 4) if found[i])
        values.add(f"#t{int(h)}:{m}")
    low = _TIME.sub(" ", low)
    for val, _hedged in numbers(low):
        if not (1000 <= val <= 2100 and val == int(val)):  # a year dates, it is not a bound value
            values.add(f"#{val:g}")
    for tok in re.findall(r"[a-z][a-z_\-]*(?<=_)\d+(?:\.\d+)*|[a-z][a-z_\-]*", low):
        if tok in _LO:
            values.add("<")
        elif tok in _HI:
            values.add(">")
        elif tok in _IN:
            values.add("@in")
        elif tok in _OUT:
            values.add("@out")
        elif tok.startswith("ord_"):
            n = int(tok[4:])
            suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
            values.add(f"#{n}{suffix}")
        elif tok in _TIERS or (stem(tok) in _VALUE_TERMS and stem(tok) not in _COLLIDING):
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
    """Clauses of one sentence: cut at ``_CUT``, but not inside a "between X and Y" range,
    not before an exemplifying or comparing tail (``_TAIL``), and a fronted qualifier
    (``_FRONTED``) stays with the clause it qualifies."""
    pieces: list[str] = []
    at, comma = 0, False  # start of the current piece; was the cut before it a bare comma?
    fronted = False
    for m in [*_CUT.finditer(sentence), None]:
        end = len(sentence) if m is None else m.start()
        piece = sentence[at:end]
        if m is not None and _RANGE_AND.search(piece) and re.match(r"\s*,?\s*and\b", m.group(0), re.I):
            continue  # the range's "and": this clause goes on
        if pieces and comma and _TAIL.match(piece.strip()):
            pieces[-1] = f"{pieces[-1]}, {piece.strip()}"
        elif (len(pieces) == 1 and comma and not fronted and _FRONTED.match(pieces[0].strip())
              and not numbers(pieces[0])):  # "After the first 30 minutes," is a frame of its own
            pieces[-1], fronted = f"{pieces[-1]}, {piece.strip()}", True
        else:
            pieces.append(piece)
        if m is not None:
            at, comma = m.end(), m.group(0).strip() == ","
    return [c for c in pieces if c and re.search(r"\w", c)]


def _lead(piece: str) -> frozenset[str]:
    """The clause's own first content word: its subject ("accessories a 6-month warranty")."""
    _, plain = _terms(" ".join(piece.split()[:2]))
    return frozenset(plain)


#: A clause that opens with "then" / "after that" / "thereafter" states the condition that
#: follows the one before ("free for the first 30 minutes, then 2 EUR per hour"): it does
#: not inherit that clause's class words.
_NEXT = re.compile(r"^(?:then|after that|thereafter|beyond that|from then on)\b", re.IGNORECASE)


def _gapped(piece: str, plain: set[str], before: set[str]) -> bool:
    """A clause with a subject of its own and the verb left out: a new first word, and some
    other term repeated from the clauses before ("..., and accessories a 6-month warranty")."""
    lead = _lead(piece)
    return bool(lead - before) and bool((plain - lead) & before)


def _frames(pieces: list[str]) -> list[tuple[str, set[str], set[str]]]:
    """Terms per clause, elliptical clauses filled in from the first one."""
    out: list[tuple[str, set[str], set[str]]] = []
    for i, piece in enumerate(pieces):
        values, plain = _terms(piece)
        if i and out and len(plain) <= 2 and values:
            # "... and 60 EUR outside the EU": the per diem, again. A gapped clause, with a
            # subject of its own and the verb left out ("Laptops carry a 2-year warranty
            # and accessories a 6-month warranty": a new first word, the object repeated),
            # keeps the first clause's other terms, not its subject ("laptops"). A clause
            # that opens with its own verb ("... and costs 12 EUR") shares the subject.
            before = out[0][2] | out[-1][2]
            drop = _lead(out[0][0]) | _lead(out[-1][0]) if _gapped(piece, plain, before) else frozenset()
            plain |= before - drop
            if _NEXT.match(piece.strip()):  # "..., then 2 EUR per hour": the next condition
                values.add("@next")
            elif not any(v[0].isalpha() for v in values):  # "... and costs 12 EUR": still express
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


def _head(clause: str) -> str:
    """What an elliptical clause leaves out of ``clause``: its words before the verb ("The
    per diem is"), or, with no such verb, before its first number or range word ("He wrote
    about" of "He wrote about 39 plays"); never a number or range word of the subject."""
    head = re.split(r"\b(?:is|are|costs?|takes?|gets?|pays?)\b", clause, maxsplit=1)
    words = head[0].split()
    for n, word in enumerate(words):  # "Adults aged 19 to 70 get ...": the subject's own range
        if any(not v[0].isalpha() for v in _terms(word)[0]):  # is not the elliptical clause's
            return " ".join(words[:n])
    return f"{head[0].strip()} is" if len(head) > 1 else clause.strip()


def decompose(claim: str) -> list[str]:
    """Atomic parts of a compound claim: clauses that each carry content of their own, an
    elliptical one ("and 60 EUR outside the EU") completed with the head of the last full
    clause before it."""
    pieces = _clauses(claim)
    if len(pieces) < 2:
        return [claim]
    parts: list[str] = []
    full = pieces[0]
    for i, piece in enumerate(pieces):
        values, plain = _terms(piece)
        if not values and len(plain) < 2:
            if parts:
                parts[-1] = f"{parts[-1]}, {piece}"
            continue
        if i and parts and len(plain) <= 2 and values and not _gapped(piece, plain, _terms(full)[1]):
            piece = f"{_head(full)} {piece}".strip()
        else:
            full = piece
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


#: A capitalised word after a lower-case word or a comma: a name, not a sentence opening
#: (a clause after the first of its sentence is read as if after a comma).
_MID_CAPITAL = re.compile(r"(?<=[a-z0-9,;:] )[A-Z][a-z]+")


#: A range word that bounds a number ("under 50 EUR", "more than 3 days", "at least 18").
_BOUND = re.compile(r"\b(?:" + "|".join(sorted((_LO | _HI) - {"upto", "within_n"}))
                    + r"|up to|within|at least|at most)"
                    r"\s+(?:than\s+)?(?:the\s+|a\s+|an\s+)?(?:first\s+|last\s+)?[$\u20ac\u00a3]?\d",
                    re.IGNORECASE)


def _same_frame(best: Unit, rival: Unit, claim_terms: set[str]) -> bool:
    """``rival`` goes on about ``best``'s subject: one sentence, the same qualifiers (classes,
    ranges, inside/outside), and a first word the claim does not name ("... and draws about
    300,000 visitors"); a number found there is another predicate of one frame."""
    quals = {v for v in best.values if not v.startswith("#")}
    return (rival.sentence == best.sentence and quals == {v for v in rival.values if not v.startswith("#")}
            and not rival.lead & claim_terms)


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
    # A name the best clause lacks is the entity check's business: a person or place is
    # not a class a value is bound to ("Powell selected ..." is no rival subject).
    names = {stem(w.lower()) for n, u in enumerate(source_units) for w in _MID_CAPITAL.findall(
        u.text if n == 0 or source_units[n - 1].sentence != u.sentence else f", {u.text}")}
    for rival in _rivals(best, source_units):
        for term in sorted(missing & rival.terms, key=lambda t: (t not in rival.values, t)):
            subject = rival.sentence == best.sentence and term in rival.lead - best.plain - names
            if term in {"<", ">"} and rival.sentence != best.sentence and not _BOUND.search(rival.text):
                continue  # "higher packaging costs" in the next sentence bounds no value of this one
            if term.startswith("#") and _same_frame(best, rival, values | plain):
                continue  # "The festival runs ten days and draws 300,000 visitors": one subject
            if term in rival.values or subject:
                return Binding(term, best, rival)
    return None
