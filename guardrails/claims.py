"""Lexical helpers for citation checks: sentence splitting, citation markers, content
words, numbers, negation and entities. Pure Python, no model.

Why a separate module: these rules are the cheap, explainable half of
``guardrails.citations``; keeping them apart keeps both files small and testable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Set as AbstractSet

__all__ = ["STOP", "content_stems", "entities", "has_antonym_clash", "is_claim", "name_stems", "negated",
           "numbers", "numbers_match", "parse_markers", "split_sentences", "stem", "tokens"]

# Citation markers: [1], [1][2], [1, 2], [1-3], [S1]; ids are kept as strings.
_MARKER = re.compile(r"\[\s*([A-Za-z_]*\d+(?:\s*[,;\-–]\s*[A-Za-z_]*\d+)*)\s*\]")
_MARKERS_RUN = re.compile(r"(?:\s*\[\s*[A-Za-z_]*\d+(?:\s*[,;\-–]\s*[A-Za-z_]*\d+)*\s*\])+")
_ABBREV = {"e.g", "i.e", "dr", "mr", "mrs", "ms", "prof", "st", "vs", "etc", "inc", "ltd", "jr",
           "sr", "co", "corp", "approx", "no", "fig", "al", "u.s", "u.k", "mt", "ca", "c", "cf", "ft",
           "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
_NEVER_END = {"e.g", "i.e", "dr", "mr", "mrs", "ms", "prof", "st", "vs", "cf", "mt", "approx", "fig"}
_END = re.compile(r"[.!?]+[\"'”’)]*")


def parse_markers(text: str) -> tuple[str, list[str]]:
    """Remove citation markers from ``text``; return (clean text, ids in order, unique)."""
    ids: list[str] = []
    for m in _MARKER.finditer(text):
        for part in re.split(r"\s*[,;]\s*", m.group(1)):
            rng = re.fullmatch(r"(\d+)\s*[\-–]\s*(\d+)", part)
            if rng and 0 <= int(rng.group(2)) - int(rng.group(1)) < 50:
                ids += [str(i) for i in range(int(rng.group(1)), int(rng.group(2)) + 1)]
            else:
                ids += [p.strip() for p in re.split(r"\s*[\-–]\s*", part)]
    clean = re.sub(r"\s+([.,;:!?])", r"\1", _MARKER.sub("", text))
    return re.sub(r"\s{2,}", " ", clean).strip(), list(dict.fromkeys(ids))


_INITIALISM = re.compile(r"(?:[a-z]\.)+[a-z]")  # "u.s", "a.v", "d.c" (the last dot is the match's)


def _opens_sentence(rest: str) -> bool:
    """After an abbreviation ("U.S.", "Co."), does ``rest`` start a new sentence? A name
    ("the U.S. Supreme Court", "Allen and Co. Sun Valley") does not; a function word or a
    pronoun ("... to the U.S. The next year", "... & Co. He") does."""
    word = re.match(r"\s*[\"'“‘(]*([A-Za-z]+)", rest)
    return not word or word.group(1).lower() in _STOP


def split_sentences(text: str) -> list[str]:
    """Split into sentences, keeping citation markers with the sentence they follow.

    A boundary is ``.``/``!``/``?`` followed by whitespace (or end) and then an uppercase
    letter, digit, quote, bracket or bullet -- so decimals (3.5), "e.g. x", "Dr. Smith"
    and initials stay inside; after "U.S." or "Co." only a function word or pronoun ("The",
    "He") starts a new sentence, a name ("Supreme Court") does not. Markers placed after
    the period ("... 1953. [2] Next") belong to the sentence before. Newlines always end a sentence.
    """
    out: list[str] = []
    for block in re.split(r"\n\s*", text):
        block = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", block)  # bullet / list prefix
        start = 0
        for m in _END.finditer(block):
            end = m.end()
            run = _MARKERS_RUN.match(block, end)
            if run:
                end = run.end()
            rest = block[end:]
            if rest and not rest[0].isspace():
                continue
            nxt = rest.lstrip()[:1]
            word = re.search(r"([A-Za-z][A-Za-z.]*)$", block[start:m.start()])
            w = word.group(1).lower() if word else ""
            if nxt and not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘([*-•"):
                continue
            abbrev = (w in _NEVER_END or (len(w) == 1 and nxt.isupper())
                      or ((w in _ABBREV or _INITIALISM.fullmatch(w)) and not (
                          nxt.isupper() and _opens_sentence(rest))))
            if m.group(0) == "." and nxt and not run and abbrev:
                continue
            piece = block[start:end].strip()
            if piece:
                out.append(piece)
            start = end
        piece = block[start:].strip()
        if piece:
            if out and _MARKERS_RUN.fullmatch(piece):
                out[-1] += " " + piece
            else:
                out.append(piece)
    return out


_STOP_WORDS = """a an the and or but if then than that this these those is are was were be been being am
do does did doing have has had having of in on at to for from by with about as into
onto over under up down out off again further once here there when where why how all
any both each few more most other some such only own same so too very can will just
should would could may might must shall it its it's they them their theirs we us our
you your he him his she her hers i me my mine what which who whom whose also while
during before after between through per via around roughly about approximately nearly
almost some many much like just still yet percent cent"""
_STOP = frozenset(_STOP_WORDS.split())
STOP = _STOP
_NEG = re.compile(r"\b(?:not|no|never|none|nor|neither|cannot|without|instead of|rather than|lack(?:s|ed)?"
                  r"|fail(?:s|ed)? to|"
                  r"unable|nobody|nothing|nowhere|isn't|aren't|wasn't|weren't|don't|doesn't|"
                  r"didn't|won't|can't|couldn't|shouldn't|hasn't|haven't|hadn't)\b|n't\b"
                  r"|n’t\b", re.IGNORECASE)
_WORDNUM: dict[str, int | float] = {
    w: i for i, w in enumerate(["zero", "_", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                                "seventeen", "eighteen", "nineteen", "twenty"])
    if w != "_"}
_WORDNUM.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                 "ninety": 90, "hundred": 100, "thousand": 1000, "twice": 2, "double": 2, "half": 0.5,
                 "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
                 "eighth": 8, "ninth": 9, "tenth": 10, "dozen": 12, "thirds": 3})
#: Number words that state a quantity ("ten minutes"); ordinals like "first" also open
#: sentences as mere sequencing, so they do not make a sentence a claim.
_CARDINALS = {w for w, v in _WORDNUM.items() if isinstance(v, int) and v >= 2 and not w.endswith(
    ("st", "nd", "rd", "th", "ice", "ble", "thirds"))} | {"hundred", "thousand", "million", "billion"}
_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9,
          "b": 1e9, "trillion": 1e12, "tn": 1e12}
_NUM = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:\s*(st|nd|rd|th|s)\b)?"
                  r"(?:\s*(thousand|million|billion|trillion)\b|(bn|mn|tn|k)\b)?", re.IGNORECASE)
_HEDGE = re.compile(r"\b(about|around|roughly|approximately|nearly|almost|over|some|more than|"
                    r"less than|under|up to|close to|just over|just under|~)\s*[$€£]?\s*$", re.IGNORECASE)


def _hedged(text: str, at: int) -> bool:
    """Is the number starting at ``at`` hedged ("about 40")? Only the words just before it
    are read: searching the whole prefix made a long source quadratic in its numbers."""
    return _HEDGE.search(text, max(0, at - 40), at) is not None


_ANTONYMS = [("increase", "decrease"), ("rise", "fall"), ("rose", "fell"), ("raise", "lower"),
             ("higher", "lower"), ("more", "less"), ("gain", "loss"), ("before", "after"),
             ("above", "below"), ("larger", "smaller"), ("maximum", "minimum"), ("first", "last"),
             ("increased", "decreased"), ("raised", "lowered"), ("approved", "rejected"),
             ("allowed", "banned"), ("win", "lose"), ("won", "lost"), ("absorb", "reflect"),
             ("absorbs", "reflects"), ("lowest", "highest"), ("greater", "lower"), ("increases", "declines"),
             ("increases", "decreases"), ("rises", "falls"), ("north", "south"), ("east", "west"),
             ("male", "female"), ("few", "most"), ("few", "many"), ("true", "false"), ("open", "closed"),
             ("safe", "unsafe"), ("legal", "illegal"), ("public", "private"), ("inside", "outside"),
             ("cheaper", "costlier"), ("faster", "slower"), ("early", "late"), ("earlier", "later"),
             ("always", "never"), ("all", "none"), ("minimum", "maximum"), ("start", "end"),
             ("warm", "cold"), ("hot", "cold"), ("warmer", "colder"), ("active", "dormant"),
             ("active", "inactive"), ("crowded", "empty"), ("youngest", "oldest"), ("young", "old"),
             ("wet", "dry"), ("strong", "weak"), ("rich", "poor"), ("accepted", "rejected"),
             ("included", "excluded"), ("possible", "impossible"), ("cheap", "expensive"),
             ("longest", "shortest"), ("long", "short"), ("wide", "narrow"), ("best", "worst"),
             ("easy", "difficult"), ("common", "rare"), ("success", "failure"), ("internal", "external"),
             ("same", "different"), ("ancient", "modern"), ("simple", "complex"), ("light", "dark"),
             ("indoors", "outdoors"), ("indoor", "outdoor"), ("interior", "exterior"), ("inner", "outer"),
             ("domestic", "international"), ("permitted", "prohibited"), ("allowed", "prohibited"),
             ("allowed", "forbidden"), ("permitted", "forbidden"), ("required", "optional"),
             ("mandatory", "optional"), ("paid", "unpaid"), ("online", "offline"), ("weekday", "weekend"),
             ("weekdays", "weekends"), ("upper", "lower")]
#: Words on the same side of a pair: evidence saying "within" does not contradict "inside".
_SAME_SIDE = {"inside": {"within", "indoors", "inner", "internal", "interior"},
              "outside": {"beyond", "outdoors", "outer", "external", "exterior"},
              "indoors": {"inside"}, "outdoors": {"outside"}, "prohibited": {"forbidden", "banned"},
              "forbidden": {"prohibited", "banned"}, "banned": {"prohibited", "forbidden"},
              "allowed": {"permitted"}, "permitted": {"allowed"},
              "required": {"mandatory", "compulsory", "must"},
              "mandatory": {"required", "compulsory", "must"}}
_NEGATORS = {"not", "no", "never", "cannot", "nor"}
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_UNITS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_COMPOUND_WORD = re.compile(rf"\b({_TENS})[- ]({'|'.join(_UNITS)})\b", re.IGNORECASE)


def _join_number_words(text: str) -> str:
    """"twenty-six" -> "26", so compound number words count as one number."""
    return _COMPOUND_WORD.sub(lambda m: str(_WORDNUM[m.group(1).lower()]
                                            + _UNITS.index(m.group(2).lower()) + 1), text)
_FIRST_PERSON = re.compile(r"^i(?:['’](?:ll|m|ve|d))?$", re.IGNORECASE)  # "I'll" is no name
# Acknowledgements a chat reply opens with ("Noted.", "Got it, ...") state nothing checkable.
_FILLER = re.compile(r"^(?:noted|got it|understood|will do|sounds good|all right|alright|"
                     r"hi|hello|hey|thanks|thank you|sure|certainly|of course|great question|good question|"
                     r"here(?:'s| is| are)|below|the following|i hope|hope|let me|feel free|please|happy to|"
                     r"glad to|i'm not|i am not|in short|in summary|to summari[sz]e|enjoy|ok|okay|"
                     r"that's|what a|would you|do you|good luck|i think|i believe"
                     r"|in my (?:view|opinion))\b", re.IGNORECASE)
_OPINION = re.compile(r"\b(?:in my (?:view|opinion)|i think|i believe|i feel|personally)\b", re.IGNORECASE)
# Evaluations and advice: not checkable against a source unless they carry a number/name.
_SUBJECTIVE = re.compile(r"\b(?:amazing|fascinating|remarkable|incredible|wonderful|interesting|awesome|"
                         r"beautiful|impressive|exciting|worth|may want|might want|it depends|"
                         r"every (?:situation|case) is different|you should consider)\b", re.IGNORECASE)
_COMPOUND = re.compile(r"(?<![\d.])(\d+)\s*([-–:])\s*(\d+)(?:\s*:\s*(\d+))?(?!\d|\.\d)")


def tokens(text: str) -> list[str]:
    return re.findall(r"[A-Za-zÀ-ÿ0-9]+(?:[’'][A-Za-z]+)?", text)


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """Very light English stemmer: lowercase, drop possessive and common suffixes (cached:
    every check stems the same source words again)."""
    w = re.sub(r"[’']s$", "", word.lower())
    for suf, rep, min_len in (("ies", "y", 5), ("ing", "", 6), ("ied", "y", 5), ("ed", "", 5),
                              ("es", "", 5), ("s", "", 4), ("ly", "", 5)):
        if w.endswith(suf) and len(w) >= min_len and not w.endswith("ss"):
            w = w[: len(w) - len(suf)] + rep
            break
    # "live"/"lived", "require"/"requires": drop a final e so both forms meet.
    return w.rstrip("e") if len(w) >= 4 else w


def content_stems(text: str) -> set[str]:
    """Stems of the words that carry content: no stop words, no numbers (digits or words;
    numbers have their own check)."""
    return {stem(t) for t in tokens(text)
            if t.lower() not in _STOP and not t.isdigit() and t.lower() not in _WORDNUM}


def numbers(text: str) -> list[tuple[float, bool]]:
    """Numbers in ``text`` as (value, hedged); "1,000"=1000, "5%"="5 percent", "two"=2."""
    out: list[tuple[float, bool]] = []
    text = _join_number_words(text)
    for m in _NUM.finditer(text):
        val = float(m.group(1).replace(",", ""))
        scale = (m.group(3) or m.group(4) or "").lower()
        out.append((val * _SCALE.get(scale, 1.0), _hedged(text, m.start())))
    for m in re.finditer(r"\b(" + "|".join(_WORDNUM) + r")\b", text, re.IGNORECASE):
        w = m.group(1).lower()
        val = float(_WORDNUM[w])
        nxt = re.match(r"\s+(thousand|million|billion|trillion)\b", text[m.end():], re.IGNORECASE)
        if nxt and w not in ("thousand",):
            val *= _SCALE[nxt.group(1).lower()]
        out.append((val, _hedged(text, m.start())))
    return out


def negated(text: str) -> int:
    """How many negation cues ("not", "never", "without", "n't", ...) the text has."""
    return len(_NEG.findall(text))


def entities(text: str, known: AbstractSet[str] = frozenset()) -> set[str]:
    """Stems of capitalised tokens that are not the sentence's first word. The first word
    counts when it is an acronym or one of the ``known`` names (stems of words written
    capitalised mid-sentence in the sources), e.g. "Tesla sold ..."."""
    toks = tokens(text)
    out = set()
    for i, t in enumerate(toks):
        acronym = t.isupper() and len(t) > 1  # "WHO", "US": names even if stop words
        if (t.lower() in _STOP and not acronym) or _FIRST_PERSON.match(t) or t.isdigit():
            continue
        if not (t[0].isupper() or any(c.isupper() for c in t[1:])):
            continue
        if t.isupper() and len(t) <= 3 and i and toks[i - 1][0].isdigit():
            continue  # a unit after a number ("281 TB", "5 GB"), not a name
        if i == 0 and not (t.isupper() and len(t) > 1) and stem(t) not in known:
            continue
        out.add(stem(t))
    return out


def name_stems(text: str) -> set[str]:
    """Stems of the capitalised words in ``text`` (stopwords aside): names the sources use."""
    return {stem(t) for t in tokens(text) if t[0].isupper() and t.lower() not in _STOP}


def _words_and_negated(text: str) -> tuple[set[str], set[str]]:
    """(lowercase words, the words a "not"/"no"/"never" just before negates)."""
    toks = [t.lower() for t in tokens(text)]
    negated = {t for i, t in enumerate(toks) if any(
        w in _NEGATORS or w.endswith("n't") for w in toks[max(0, i - 2):i])}
    return set(toks), negated


def has_antonym_clash(claim: str, evidence: str) -> bool:
    """The claim uses one side of an antonym pair, the evidence only the other side --
    unless either side is negated ("not allowed" is "prohibited"; the negation check
    reads those) or the evidence has the claim's side in other words ("within" / "inside")."""
    c, c_neg = _words_and_negated(claim)
    e, e_neg = _words_and_negated(evidence)
    for a, b in _ANTONYMS:
        for x, y in ((a, b), (b, a)):
            if (x in c and x not in e and y in e and y not in c and not _SAME_SIDE.get(x, set()) & e
                    and x not in c_neg and y not in e_neg):
                return True
    return False


def is_claim(text: str) -> bool:
    """Does an uncited sentence assert something checkable? Questions and filler do not."""
    t = text.strip()
    if t.endswith("?") or not tokens(t):
        return False
    has_num = bool(_NUM.search(t)) or any(w.lower() in _CARDINALS for w in tokens(t))
    if (_FILLER.match(t) or _OPINION.search(t)) and not has_num:
        return False
    if _SUBJECTIVE.search(t) and not has_num and not entities(t):
        return False
    if has_num or entities(t):
        return True
    return len(content_stems(t)) >= 5 and not t.endswith(("!", ":"))


def _units(text: str) -> list[tuple[float, bool, bool, str]]:
    """(value, hedged, written as a word, unit) per number; the unit is the stem of the
    next content word ("7 million visitors" -> "visitor")."""
    out = []
    text = _join_number_words(text)
    words = re.finditer(r"\b(" + "|".join(_WORDNUM) + r")\b", text, re.IGNORECASE)
    for m in [*_NUM.finditer(text), *words]:
        after = text[m.end():]
        scale = (re.match(r"\s*(thousand|million|billion|trillion)\b", after, re.IGNORECASE)
                 if not m.group(0)[0].isdigit() else None)
        after = after[scale.end():] if scale else after
        unit = re.match(r"\s*-?\s*(%|per ?cent|[a-z]+)", after)  # the very next word, lowercase
        word = unit.group(1) if unit else ""
        percent = (word.startswith(("%", "p")) and "cent" in word) or word == "%"
        nxt = [] if not unit or word in _STOP else ["%" if percent else word]
        for val, hedged in numbers(m.group(0) + (scale.group(0) if scale else "")) or [(0.0, False)]:
            out.append((val, hedged or _hedged(text, m.start()), not m.group(0)[0].isdigit(),
                        stem(nxt[0]) if nxt else ""))
    return out


def _compounds(text: str) -> set[str]:
    return {"-".join(g for g in (m.group(1), m.group(3), m.group(4)) if g) + m.group(2).replace("–", "-")
            for m in _COMPOUND.finditer(text)}


_CLOCK = re.compile(r"\b(1[0-2]|0?[1-9])(?:[:.]([0-5]\d))?\s*([ap])\.?\s?m\b|\b(noon|midday)\b",
                    re.IGNORECASE)


def clock_24h(text: str) -> str:
    """Clock times on a 12-hour clock written on a 24-hour one ("6 pm" -> "18:00", "8:30 am"
    -> "8:30", "noon" -> "12:00"): opening hours are written both ways, and "6" is no "18"."""
    def to24(m: re.Match[str]) -> str:
        if m[4]:
            return "12:00"
        hour = int(m[1]) % 12 + (12 if m[3].lower() == "p" else 0)
        return f"{hour}:{m[2] or '00'}"
    return _CLOCK.sub(to24, text)


def numbers_match(claim: str, evidence: str) -> bool:
    """Every number in the claim occurs in the evidence (within 5% when hedged: "about").

    A number written as a word or hedged ("two crewmates", "nearly a thousand years")
    may be the writer's own count or arithmetic; it only fails when the evidence gives a
    *different* number for the same unit. Scores and times ("4-3", "2:00:35") must match
    as a whole when the evidence has any.
    """
    claim, evidence = clock_24h(claim), clock_24h(evidence)
    have = _units(evidence)
    for val, hedged, word, unit in _units(claim):
        tol = 0.05 * abs(val) if hedged else 1e-9 * max(1.0, abs(val))
        same = [u for h, _, _, u in have if abs(val - h) <= tol]
        rival = unit and any(u == unit and abs(val - h) > tol for h, _, _, u in have)
        if same and (not rival or not unit or unit in same):
            continue  # present, and not bound to another unit the claim's unit owns
        if not same and word and not rival:
            continue  # "two crewmates": the writer's own count, contradicted by nothing
        return False
    wanted, given = _compounds(claim), _compounds(evidence)
    return not (wanted and given and not wanted <= given)
