"""Heuristic prompt-injection detection for user input and retrieved chunks.

Why heuristics: a classifier model would need weights we cannot download, and most real
injections reuse a small vocabulary ("ignore previous instructions", fake role tokens,
exfiltration images). Rules are deliberately narrow — each needs an *instruction-override*
idea, not just a keyword — so questions *about* prompts ("what does 'system prompt'
mean?") pass; the override rules are composed from word classes (``injection_rules``) so
paraphrases match too. Text is de-obfuscated first (NFKC, invisible characters removed); hidden
carriers (HTML comments, Unicode tag characters, zero-width runs, base64) are decoded and
scanned too, because hiding an instruction is itself a signal.

Retrieved chunks are the main threat (indirect injection): the default there is to
quarantine them. User input defaults to ``flag`` (the user can only attack their own
session); set ``input_action="block"`` to refuse it instead.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, TypeVar

from assistant.audit import audit
from assistant.errors import InputRejected
from assistant.turn import InjectionNote
from guardrails.base import Guard, GuardContext
from guardrails.injection_rules import CONFUSABLES, LEET, RULES, SQUEEZED
from guardrails.normalize import BIDI, ZERO_WIDTH, item_text
from memory.screening import register_scanner

__all__ = ["RULES", "THRESHOLD", "InjectionGuard", "InjectionResult", "ingest_scanner", "item_ref",
           "scan", "short_hash"]

THRESHOLD = 0.6  # score at which text counts as a possible injection

T = TypeVar("T")
_F = re.IGNORECASE

_ADDRESSEE = re.compile(r"\b(?:ai|assistant|model|llm|chatbot|gpt|claude|system)\b")
_IMPERATIVE = re.compile(r"\b(?:ignore|disregard|you must|you should|do not tell|don't tell|say|"
                         r"respond|reply|answer|instead|secretly|tell the user|instructions?)\b")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_EXFIL = re.compile(r"!\[[^\]]{0,200}\]\(\s*<?(https?://[^)\s>?]{1,500}\?[^)\s>]{0,2000})")
_EXFIL_DATA = re.compile(r"[{}<>$]|%s|\b(?:secret|password|token|key|prompt|history|"
                         r"conversation|chat|user|email|data|info|ssn|card)\b", _F)
_ZW_RUN = re.compile("[" + "".join(ZERO_WIDTH) + "]{16,}")


@dataclass
class InjectionResult:
    score: float = 0.0
    rules: list[str] = field(default_factory=list)

    def add(self, rule: str, weight: float) -> None:
        if rule not in self.rules:
            self.rules.append(rule)
            self.score = round(self.score + weight, 3)


def _plain(text: str) -> str:
    """De-obfuscate: drop invisible characters, NFKC, lower-case, collapse spaces."""
    text = "".join(ch for ch in text if ch not in ZERO_WIDTH and ch not in BIDI
                   and unicodedata.category(ch) != "Cf")
    return re.sub(r"[ \t]+", " ", unicodedata.normalize("NFKC", text)).lower()


# An override said under a condition ("if you use Docker, ignore the steps above") or
# quoted inside a question ("what does 'ignore previous instructions' mean?") is far more
# often documentation or curiosity than an attack: such a match counts for less.
_DAMPENED = {"ignore_instructions", "override_prior", "instructions_void", "ignore_instructions_i18n",
             "instructions_neutralised", "instructions_neutralised_weak"}
_CONDITIONAL = re.compile(
    r"\b(?:if|unless|when|once|in case) (?:you(?:'re| are)? (?:use|using|run|running|on|already|"
    r"prefer|install|installed|have (?:an? |the |already |installed )|don't|do not)|your (?:\w+ )?"
    r"(?:is|are|has|uses|runs))\b")
_QUESTION = re.compile(r"^\W*(?:what|why|how|who|which|where|explain|define)\b|\?\W*$")
# ... unless it is a request in question form ("could you ignore your rules?").
_REQUEST = re.compile(r"^\W*(?:(?:can|could|would|will|won't) you|please|why not|what if|how about)\b")
_YOU = re.compile(r"\b(?:you|your|yourself)\b")
# ... or quoted as an example ("attacks such as 'ignore previous instructions'").
_MENTION = re.compile(r"\b(?:such as|like|e\.g\.|for example|for instance|phrases?|called|known as|"
                      r"patterns?|examples?|attacks?)\b")
# A quotation: marks at word edges, so the apostrophes of "I'd ... it's" never pair up.
_QUOTED = re.compile(r"(?<![\w])([\"'`])([^\"'`\n]{4,200}?)\1(?!\w)|\u201c()([^\u201d\n]{4,200})\u201d|"
                     r"\u2018()([^\u2019\n]{4,200})\u2019")
_SPACED = re.compile(r"(?<![a-z])(?:[a-z][ .\-_*·]{1,3}){5,}[a-z](?![a-z])")


# ... or described rather than ordered ("later rules always override previous rules",
# "you can just ignore all of the above"): a subject or modal right before the verb.
_DESCRIBED = re.compile(r"\b(?:will|would|always|can|could|may|might|which|who|they|it|these|those|"
                        r"rules|settings|values|classes|subclasses|methods|options)\s+(?:\w+\s+)?$")
_ORDERED = re.compile(r"\byou (?:must|should|shall|will|need to|have to|are to|are going to)\s+"
                      r"(?:\w+\s+)?$|\b(?:now|then|please)\s+(?:\w+\s+)?$")
_COMPOUND = re.compile(r"\b(?:prompts?|instructions?|rules?|guidelines?|directives?) (?:design|template|"
                       r"format|engineering|library|field|section|editor|file|length|style|structure|"
                       r"tuning|writing)s?\b")
_VERB_FIRST = {"ignore_instructions", "override_prior", "ignore_instructions_i18n",
               "instructions_neutralised", "instructions_neutralised_weak"}
_NEGATED = re.compile(r"\b(?:don't|do not|dont|never|(?<!why )not|nor|without|no need to)\s+(?:\w+\s+)?$")


def _weight(name: str, weight: float, text: str, m: re.Match[str]) -> tuple[str, float]:
    if name not in _DAMPENED:
        return name, weight
    ends = (".", "!", "?", "\n\n")  # a sentence may wrap over lines; a blank line ends it
    left = max(text.rfind(ch, 0, m.start()) for ch in ends) + 1
    right = min([i for ch in ends if (i := text.find(ch, m.end())) >= 0] or [len(text)])
    sentence = text[left:right + 1]
    if _CONDITIONAL.search(sentence) and not RULES["addresses_model"][1].search(sentence):
        return name + ":conditional", 0.4
    if _COMPOUND.search(m.group()):  # "the system prompt design was replaced": not the prompt
        return name + ":compound", 0.0
    before = text[left:m.start()]
    if name in _VERB_FIRST and _NEGATED.search(before):  # "don't ignore the rules above"
        return name + ":negated", 0.0
    if name in _VERB_FIRST and _DESCRIBED.search(before) and not _ORDERED.search(before):
        return name + ":described", 0.3
    question = _QUESTION.search(sentence.strip()) and not _REQUEST.search(sentence.strip())
    if (question or _MENTION.search(sentence)) and any(
            left + q.start(g) <= m.start() and m.end() <= left + q.end(g)
            for q in _QUOTED.finditer(sentence) for g in (2, 4, 6) if q.group(g) is not None):
        return name + ":quoted", 0.3
    if question and not _YOU.search(sentence):  # about some model, not addressed to this one
        return name + ":discussed", 0.3
    return name, weight


# One idea, several phrasings: the override rules overlap, so together they count once.
_FAMILY = {"ignore_instructions", "override_prior", "instructions_void", "ignore_instructions_i18n",
           "instructions_neutralised", "instructions_neutralised_weak"}


# What a disguised spelling is re-read for (a second pass over every rule would double the cost).
_DISGUISABLE = _FAMILY | {"new_task", "released_from_rules", "reveal_prompt", "persona_override",
                          "rules_replaced"}


def _match_rules(text: str, result: InjectionResult, prefix: str = "",
                 names: frozenset[str] | set[str] | None = None) -> bool:
    hits: list[tuple[str, float, bool]] = []
    for name, (weight, rx) in RULES.items():
        if names is not None and name not in names:
            continue
        best: tuple[str, float] | None = None
        for m in rx.finditer(text):
            got = _weight(name, weight, text, m)
            if best is None or got[1] > best[1]:
                best = got
            if got[1] >= weight:
                break
        if best is not None:
            hits.append((*best, name in _FAMILY))
    family = max((w for _, w, fam in hits if fam), default=0.0)
    for rule, weight, fam in hits:
        if fam:
            weight, family = (weight, -1.0) if weight == family else (0.0, family)
        result.add(prefix + rule, weight)
    return bool(hits)


_WRAP = re.compile(r"(?<=\S)[ \t]*\n(?![ \t]*(?:\n|[-*+>#|]|\d+[.)]))[ \t]*")


def _variants(plain: str) -> list[tuple[str, str | None]]:
    """Spellings that hide the words from the rules: look-alike letters, leetspeak, and a
    sentence wrapped over lines (PDF text, hard-wrapped mail) read as one line."""
    out: list[tuple[str, str | None]] = []
    for folded, signal in ((plain.translate(CONFUSABLES), "obfuscated_spelling"),
                           (plain.translate(LEET), "obfuscated_spelling"), (_WRAP.sub(" ", plain), None)):
        if folded != plain and all(folded != seen for seen, _ in out):
            out.append((folded, signal))
    return out


def _comments(text: str) -> list[str]:
    """HTML comment bodies, found in linear time (a regex backtracks on unclosed ``<!--``)."""
    out, pos = [], 0
    while (start := text.find("<!--", pos)) >= 0 and (end := text.find("-->", start + 4)) >= 0:
        out.append(text[start + 4:end])
        pos = end + 3
    return out


def _decode_b64(blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        out = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in out)
    return out if out and printable / len(out) > 0.9 else None


def scan(text: str, *, _depth: int = 0) -> InjectionResult:
    """Score ``text``: the sum of the weights of the rules it matches (≥ 0.6 is suspicious)."""
    result = InjectionResult()
    plain = _plain(text)
    _match_rules(plain, result)
    for variant, signal in _variants(plain):
        probe = InjectionResult()
        _match_rules(variant, probe, names=_DISGUISABLE)
        if probe.score > result.score:  # the disguise hid something: take the unmasked reading
            for rule in result.rules:
                probe.add(rule, 0.0)
            result = probe
            if signal:
                result.add(signal, 0.2)
    leet = plain.translate(LEET)
    for run in _SPACED.finditer(leet):  # with its neighbours: "I g n o r e previous instructions"
        window = leet[max(0, run.start() - 30):run.end() + 40]
        if SQUEEZED.search(re.sub(r"[^a-z]", "", window)):
            result.add("spaced_out_instruction", 1.0)
    tags = "".join(chr(ord(ch) - 0xE0000) for ch in text if "\U000e0020" <= ch <= "\U000e007e")
    if len(tags) >= 8:  # flag emoji use up to 6 tag characters; longer runs carry text
        result.add("unicode_tag_payload", 0.8)
        _match_rules(tags.lower(), result, "hidden:")
    if _ZW_RUN.search(text):
        result.add("zero_width_payload", 0.6)
    for comment in _comments(plain):
        if _IMPERATIVE.search(comment):  # addressed to the model: almost surely an attack
            result.add("hidden_html_comment", 0.8 if _ADDRESSEE.search(comment) else 0.3)
    if _depth == 0:
        for m in _B64.finditer(text):
            decoded = _decode_b64(m.group())
            if decoded is not None:
                inner = scan(decoded, _depth=1)
                if inner.rules:
                    result.add("base64_instruction", 0.8)
                    for rule in inner.rules:
                        result.add("base64:" + rule, 0.0)
    for m in _EXFIL.finditer(text):
        if "=" not in (query := m.group(1).split("?", 1)[1]):
            continue
        result.add("markdown_image_exfiltration", 1.0 if _EXFIL_DATA.search(query) else 0.4)
    return result


#: Retrieved texts recur turn after turn (the same chunks and memories come back), so
#: their verdicts are kept: ``scan`` is a pure function of the text.
_VERDICTS = 8192


@functools.lru_cache(maxsize=_VERDICTS)
def _verdict(text: str) -> tuple[float, tuple[str, ...]]:
    """``scan(text)`` as an immutable (score, rules), remembered per text."""
    found = scan(text)
    return found.score, tuple(found.rules)


def short_hash(text: str) -> str:
    """A 12-hex-digit fingerprint: finds the same text again without logging it."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:12]


def item_ref(item: Any) -> dict[str, Any]:
    """What identifies a retrieved item in the audit log: chunk id, source, memory id."""
    ref: dict[str, Any] = {}
    inner = getattr(item, "item", None)  # a MemoryHit's item
    for key in ("chunk_id", "source_id", "memory_id"):
        value = getattr(item, key, None)
        if value is None and inner is not None:
            value = getattr(inner, key, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
            ref[key] = value
    return ref


def _mark_of(item: Any) -> InjectionResult | None:
    """The verdict stored on a chunk at ingest (``injection_score`` / ``injection_rules``)."""
    score = getattr(item, "injection_score", None)
    if not isinstance(score, (int, float)):
        return None
    res = InjectionResult()
    for rule in getattr(item, "injection_rules", None) or ():
        res.add(f"ingest:{rule}", 0.0)
    res.score = float(score)
    return res


class InjectionGuard(Guard):
    """Score user input and retrieved items; flag, block or quarantine above ``threshold``.

    ``input_action``: ``"flag"`` | ``"block"``; ``retrieval_action``: ``"flag"`` |
    ``"quarantine"`` (drop the item). Retrieved items are document chunks (a verdict stored
    at ingest counts too) and recalled memories (turns and facts). Every finding is appended
    to ``ctx.injection`` as an ``InjectionNote`` (where, index, score, rules, action, ref)
    and written to the audit log as an ``injection`` event — ids and a short hash of the
    text, never the text. A flagged item that is kept carries its verdict
    (``injection_score``) when it has such a field, so the prompt can label it.
    """

    name = "injection"

    def __init__(self, *, threshold: float = THRESHOLD, input_action: str = "flag",
                 retrieval_action: str = "quarantine") -> None:
        if input_action not in ("flag", "block") or retrieval_action not in ("flag", "quarantine"):
            raise ValueError(f"bad injection actions {input_action!r}/{retrieval_action!r}")
        self.threshold = threshold
        self.input_action, self.retrieval_action = input_action, retrieval_action

    def _note(self, ctx: GuardContext, where: str, index: int | None, res: InjectionResult,
              action: str, text: str, ref: dict[str, Any] | None = None) -> None:
        ctx.injection.append(InjectionNote(where, index, res.score, list(res.rules), action,
                                           dict(ref or {})))
        audit("injection", guard=self.name,
              hook="before_input" if where == "input" else "after_retrieval", action=action,
              rules=list(res.rules), score=res.score, threshold=self.threshold,
              user_id=ctx.user_id, session_id=ctx.session_id, index=index,
              text_sha256=short_hash(text), chars=len(text), **(ref or {}))

    def before_input(self, ctx: GuardContext, text: str) -> str:
        res = scan(text)
        if res.score < self.threshold:
            return text
        action = self.input_action
        self._note(ctx, "input", None, res, "block" if action == "block" else "flag", text)
        if action == "block":
            raise InputRejected(
                f"possible prompt injection (score {res.score}: {', '.join(res.rules)})",
                user_message="Your message looks like an attempt to change the assistant's "
                "instructions, so it was not sent. If that was not your intent, please rephrase.",
                guard=self.name)
        return text

    def after_retrieval(self, ctx: GuardContext, items: list[T]) -> list[T]:
        kept: list[T] = []
        for i, item in enumerate(items):
            texts = [item_text(item)] + [item_text(c) for c in _context_of(item)]
            res = _mark_of(item) or InjectionResult()
            for text in filter(None, texts):
                score, rules = _verdict(text)
                for rule in rules:
                    res.add(rule, 0.0)
                res.score = max(res.score, score)
            if res.score < self.threshold:
                kept.append(item)
                continue
            self._note(ctx, "retrieval", i, res, self.retrieval_action,
                       "\n".join(filter(None, texts)), item_ref(item))
            if self.retrieval_action == "flag":
                kept.append(_flagged(item, res))
        return kept


def _flagged(item: T, res: InjectionResult) -> T:
    """The item labelled with its verdict, when it has fields for one."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type) and \
            {"injection_score", "injection_rules"} <= {f.name for f in dataclasses.fields(item)}:
        return dataclasses.replace(item, injection_score=res.score,
                                   injection_rules=tuple(res.rules))
    return item


def _context_of(item: Any) -> tuple[Any, ...]:
    """Neighbour turns a retrieval hit carries along (``MemoryHit.context``)."""
    context = getattr(item, "context", ())
    return tuple(context) if isinstance(context, (tuple, list)) else ()


def ingest_scanner(text: str) -> tuple[float, list[str]]:
    """``scan`` as document ingest wants it: (score, rule names) for one chunk."""
    found = scan(text)
    return found.score, list(found.rules)


# Every corpus scans its chunks as it stores them; memory sits below the guardrails and
# may not import them, so the guardrails plug their scanner in (see ``memory.screening``).
register_scanner(ingest_scanner)
