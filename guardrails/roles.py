"""Structure-aware citation checks: who did what, what is negated, which way things moved,
and whether every part of a claim is covered. Pure Python, no model.

Why: bag-of-words overlap and sentence embeddings cannot tell "Armstrong and Aldrin
landed" from "Collins and Aldrin landed" when all three names are in the source, nor
"UDP guarantees delivery" from "UDP does not guarantee delivery". These checks look at
*local* context - the few content words around a name or number, the words a negation
cue governs, the clause a predicate sits in - which is what those errors change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from guardrails.claims import (
    STOP,
    content_stems,
    entities,
    numbers,
    numbers_match,
    stem,
    tokens,
)

__all__ = ["acronym_of", "clause_coverage", "clauses", "direction_clash", "negation_clash",
           "role_swaps", "uncovered_clauses"]

# A comma between digits ("1,000", "1,5 kg") is part of a number, not a clause break.
_CLAUSE = re.compile(r"(?<=[.!?])\s+|[;:()]|(?<!\d),|,(?!\d)|"
                     r"\s[–—-]\s|\b(?:and|but|while|whereas|although|though|because|"
                     r"which|who|after|before|when|so)\b", re.IGNORECASE)
_NEG_CUE = re.compile(r"\b(?:not|no|never|none|nor|neither|cannot|without|unable to|fail(?:s|ed)? to|"
                      r"except(?:\s+for)?|excluding|other than|"
                      r"instead of|rather than|\w+n[’']t)\b", re.IGNORECASE)
_SCOPE = 1  # content words a negation cue governs: its head ("does not *require*")
_ROLE_SPLIT = re.compile(r"(?<=[.!?])\s+|[;:,()]|\s[–—-]\s|\b(?:but|while|whereas|which|who)\b")
_ANCHOR = 2  # content words either side of a name/number that say what it did
_DIRECTIONS = {
    "up": "rise rose risen rising raise raised raising increase increased increasing grow grew grown "
          "climb climbed gain gained jump jumped surge surged soar soared hike hiked boost boosted "
          "higher up expand expanded",
    "down": "fall fell fallen falling drop dropped decline declined decrease decreased decreasing "
            "cut cuts lower lowered reduce reduced shrink shrank slump slumped plunge plunged down "
            "slash slashed contract contracted",
}
_DIRECTION = {w: d for d, words in _DIRECTIONS.items() for w in words.split()}
# "Held"/"kept" are directions only with a level ("held Bank Rate at 5%"), not "record held by".
_SAME = re.compile(r"\b(?:unchanged|steady|stable|flat|(?:held|kept|left|maintained)\b[^.,;]{0,30}?\bat)\b",
                   re.IGNORECASE)


def clauses(text: str) -> list[str]:
    """Split at punctuation and clause-joining words; every piece has some content."""
    return [c.strip() for c in _CLAUSE.split(text) if c and content_stems(c)]


def _content_positions(text: str, known: set[str]) -> list[tuple[str, bool]]:
    """(stem, is_entity_or_number) for each non-stop token, in order."""
    ents = entities(text, known)
    out = []
    for t in tokens(text):
        if t.lower() in STOP:
            continue
        s = stem(t)
        out.append((s, t.isdigit() or s in ents))
    return out


def _anchors(seq: list[tuple[str, bool]], i: int) -> set[str]:
    """Plain content words within ``_ANCHOR`` positions of item ``i``, names skipped over."""
    found: set[str] = set()
    for step in (-1, 1):
        j, seen = i + step, 0
        while 0 <= j < len(seq) and seen < _ANCHOR:
            if not seq[j][1]:
                found.add(seq[j][0])
                seen += 1
            j += step
    return found


def _occurrences(text: str, known: set[str]) -> list[tuple[str, set[str]]]:
    """(name or number, its anchor words) for each occurrence, anchors kept inside the
    occurrence's own clause ("the Empire, with its capital at X, survived": X did not)."""
    out = []
    for piece in _ROLE_SPLIT.split(text):
        seq = _content_positions(piece or "", known)
        out += [(s, _anchors(seq, i)) for i, (s, ent) in enumerate(seq) if ent]
    return out


def role_swaps(claim: str, evidence: str, known: set[str]) -> list[str]:
    """Names/numbers of the claim whose claimed role (the words around them) belongs, in
    the evidence, to a *different* name or number the claim does not mention."""
    mine, theirs = _occurrences(claim, known), _occurrences(evidence, known)
    claimed = {s for s, _ in mine}
    swapped = []
    for name, want in mine:
        own = [len(want & a) for s, a in theirs if s == name]
        if not own or not want:
            continue  # absent names are the entity check's business
        rivals = [len(want & a) for s, a in theirs
                  if s not in claimed and s.isdigit() == name.isdigit()]
        best = max(rivals, default=0)
        if best >= 2 and best > max(own):
            swapped.append(name)
    return swapped


# "impossible", "unable", "inactive": a negated adjective is the negation of its stem.
_NEG_PREFIX = re.compile(r"\b(?:un|in|im|il|ir|non-?)([a-z]{4,}(?:able|ible|ent|ant|ive|al|ful|ous|ed))\b",
                         re.IGNORECASE)


def _negated_words(text: str) -> set[str]:
    """Stems of the content words each negation cue governs (and of prefix-negated
    adjectives: "impossible" negates "possible")."""
    out: set[str] = {stem(m.group(1)) for m in _NEG_PREFIX.finditer(text)}
    for m in _NEG_CUE.finditer(text):
        rest = [t for t in tokens(text[m.end():]) if t.lower() not in STOP][:_SCOPE]
        out |= {stem(t) for t in rest}
    return out


def negation_clash(claim: str, evidence: str) -> bool:
    """The claim negates a predicate the evidence asserts, or asserts one it negates.

    Compared clause by clause: the evidence clause that shares most of the claim's words
    is the one the claim restates. Only words in a negation's scope count, so "never
    changes" vs "keeps the same" (no shared negated word) is left to similarity.
    """
    cneg = _negated_words(claim)
    cstems = content_stems(claim) | cneg
    # Is the claim negative at all? A cue, or a prefix negation whose stem the evidence
    # uses ("impossible" / "possible"); "included" is not "in-cluded".
    negative_claim = bool(_NEG_CUE.search(claim)) or bool(
        {stem(m.group(1)) for m in _NEG_PREFIX.finditer(claim)} & content_stems(evidence))
    spans = [(clause, content_stems(clause), len(cstems & content_stems(sent)))
             for sent in re.split(r"(?<=[.!?])\s+", evidence) for clause in clauses(sent) or [sent]]
    for word in cstems:
        # The evidence clause that restates this part of the claim: it has the word, and
        # the most claim words (then the most in its sentence, which carries the subject).
        having = [(len(cstems & stems), bonus, bool(_NEG_CUE.search(clause)), clause)
                  for clause, stems, bonus in spans if word in stems]
        if not having:
            continue
        clause = max(having, key=lambda h: h[:3])[3]  # a tie goes to the negated clause
        # One side negates this word, the other has no negation at all (both negating
        # different heads, "does not maintain an army" / "has no army", agree).
        if (word in cneg and not _negative(clause, word)) or (
                word in _negated_words(clause) and not negative_claim):
            return True
    # A positive claim restating (3+ shared words) a clause the evidence negates, even if
    # the negated head differs: "effective against viruses" / "do not work against viruses".
    # Only when that negated clause restates the claim better than any positive one.
    overlap = {c: len(cstems & content_stems(c)) for c in clauses(evidence)}
    negative = max((n for c, n in overlap.items() if _NEG_CUE.search(c)), default=0)
    positive = max((n for c, n in overlap.items() if not _NEG_CUE.search(c)), default=0)
    return not negative_claim and negative >= 3 and negative > positive


def _negative(text: str, word: str) -> bool:
    """Does ``text`` negate anything (a cue), or ``word`` itself by prefix ("impossible")?"""
    return bool(_NEG_CUE.search(text)) or any(stem(m.group(1)) == word for m in _NEG_PREFIX.finditer(text))


def direction_clash(claim: str, evidence: str) -> bool:
    """The claim says something went up (down, stayed) where the evidence only says
    another direction: "raised" vs "held", "rose" vs "fell"."""
    def dirs(text: str) -> set[str]:
        found = {_DIRECTION[t.lower()] for t in tokens(text) if t.lower() in _DIRECTION}
        return found | ({"same"} if _SAME.search(text) else set())

    c, e = dirs(claim), dirs(evidence)
    return bool(c and e and c.isdisjoint(e))


def acronym_of(word: str, text: str) -> bool:
    """Is ``word`` (e.g. "ECB") the initials of consecutive words in ``text``?"""
    if not (word.isupper() and 2 <= len(word) <= 6):
        return False
    words = [w for w in tokens(text) if w.lower() not in ("of", "the", "and", "for")]
    initials = "".join(w[0].upper() for w in words)
    return word.upper() in initials


def clause_coverage(claim: str, sources: Sequence[str]) -> list[tuple[str, int, float]]:
    """(clause, its content words and numbers, share of them found anywhere in the sources)
    per clause of the claim: how much of each part the sources mention at all."""
    have: set[str] = set()
    for src in sources:
        have |= content_stems(src)
    text = " ".join(sources)
    prefixes = {h[:5] for h in have if len(h) >= 5}
    cover = []
    for clause in clauses(claim):
        stems = content_stems(clause)
        hit = sum(s in have or (len(s) >= 5 and s[:5] in prefixes) for s in stems)
        nums = numbers(clause)  # numbers are content too: found ones count as covered
        hit += sum(numbers_match(f"{v:g}", text) for v, _ in nums)
        total = len(stems) + len(nums)
        cover.append((clause, total, hit / max(1, total)))
    return cover


def uncovered_clauses(claim: str, sources: Sequence[str], min_cover: float = 0.34,
                      cover: Sequence[tuple[str, int, float]] | None = None) -> list[str]:
    """Clauses of the claim (two or more content words) with less than ``min_cover`` of
    their content words anywhere in the cited sources: an added, unsupported part.
    ``cover``: ``clause_coverage(claim, sources)`` when the caller has it already."""
    cover = clause_coverage(claim, sources) if cover is None else cover
    # Partial support needs a supported part: one well-covered clause, others bare.
    if len(cover) < 2 or max((c for _, n, c in cover if n >= 2), default=0.0) < 0.5:
        return []
    return [clause for clause, n, c in cover if n >= 2 and c < min_cover]
