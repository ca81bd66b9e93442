"""Heuristic prompt-injection detection for user input and retrieved chunks.

Why heuristics: a classifier model would need weights we cannot download, and most real
injections reuse a small vocabulary ("ignore previous instructions", fake role tokens,
exfiltration images). Rules are deliberately narrow — each needs an *instruction-override*
phrase, not just a keyword — so questions *about* prompts ("what does 'system prompt'
mean?") pass. Text is de-obfuscated first (NFKC, invisible characters removed); hidden
carriers (HTML comments, Unicode tag characters, zero-width runs, base64) are decoded and
scanned too, because hiding an instruction is itself a signal.

Retrieved chunks are the main threat (indirect injection): the default there is to
quarantine them. User input defaults to ``flag`` (the user can only attack their own
session); set ``input_action="block"`` to refuse it instead.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, TypeVar

from assistant.errors import InputRejected
from guardrails.base import Guard, GuardContext
from guardrails.normalize import BIDI, ZERO_WIDTH, item_text

__all__ = ["RULES", "InjectionGuard", "InjectionResult", "scan"]

T = TypeVar("T")
_F = re.IGNORECASE

#: name → (weight, pattern over de-obfuscated lower-case text)
RULES: dict[str, tuple[float, re.Pattern[str]]] = {
    "ignore_instructions": (1.0, re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,25}?\b(?:previous|prior|above|"
        r"earlier|preceding|original|initial|system|your|all)\b[^.\n]{0,20}?\b(?:instructions?|"
        r"prompts?|directives?|guidelines|rules)\b")),
    "new_instructions": (0.5, re.compile(
        r"\b(?:new|updated|real|actual) (?:system )?instructions?\s*:|\bfrom now on,? you (?:are|will|"
        r"must|shall)\b")),
    "reveal_prompt": (1.0, re.compile(
        r"\b(?:reveal|print|show|output|repeat|display|leak|dump|tell me|write out|give me)\b"
        r"[^.\n]{0,30}?\byour (?:\w+ ){0,2}?(?:system prompt|system message|instructions|initial "
        r"prompt|hidden prompt|prompt)\b|\b(?:repeat|print|output)\b[^.\n]{0,20}\b(?:everything|all "
        r"(?:the )?text|the text|the words)\b[^.\n]{0,15}\b(?:above|before this)\b")),
    "mentions_system_prompt": (0.4, re.compile(
        r"\b(?:reveal|print|show|output|leak|dump)\b[^.\n]{0,20}\bthe (?:system|hidden|initial) prompt\b")),
    "persona_override": (1.0, re.compile(
        r"\b(?:you are|you're|act as|pretend to be|become)\s+(?:now\s+)?(?:an?\s+)?(?:dan|jailbroken|"
        r"unfiltered|unrestricted|uncensored|evil \w+|ai without (?:any )?(?:rules|restrictions|limits|"
        r"filters))\b|\bdo anything now\b|\bdan mode\b|\byou are (?:now )?in developer mode\b|"
        r"\bdeveloper mode (?:is )?(?:now )?(?:enabled|activated)\b[^.\n]{0,40}\b(?:you|policies|"
        r"restrictions|filters)\b")),
    "roleplay_jailbreak": (0.7, re.compile(
        r"\b(?:pretend|imagine|act as if|role-?play|let's play a game)\b[^.\n]{0,60}?\b(?:no|without|"
        r"free (?:of|from)|not bound by|ignores?)\b[^.\n]{0,20}?\b(?:rules|restrictions|filters|"
        r"guidelines|limitations|content polic(?:y|ies)|ethics|morals|censorship)\b|\b(?:stay in|never "
        r"break) character\b[^.\n]{0,60}\b(?:rules|restrictions|filters|refuse)\b")),
    "fake_role_tag": (1.0, re.compile(
        r"<\|(?:im_start|im_end|system|assistant|endoftext|eot_id|start_header_id)\|>|\[/?inst\]|"
        r"<</?sys>>|^\s*#{2,}\s*(?:system|new instructions?)\s*:?\s*$|</?(?:system|system_prompt)>",
        re.MULTILINE)),
    "role_prefix": (0.4, re.compile(r"^\s*(?:system|assistant)\s*:\s*\S", re.MULTILINE)),
}
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


def _match_rules(text: str, result: InjectionResult, prefix: str = "") -> bool:
    hit = False
    for name, (weight, rx) in RULES.items():
        if rx.search(text):
            result.add(prefix + name, weight)
            hit = True
    return hit


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


class InjectionGuard(Guard):
    """Score user input and retrieved chunks; flag, block or quarantine above ``threshold``.

    ``input_action``: ``"flag"`` | ``"block"``; ``retrieval_action``: ``"flag"`` |
    ``"quarantine"`` (drop the chunk). Every finding is appended to
    ``ctx.notes["injection"]`` as ``{"where", "index", "score", "rules", "action"}``.
    """

    name = "injection"

    def __init__(self, *, threshold: float = 0.6, input_action: str = "flag",
                 retrieval_action: str = "quarantine") -> None:
        if input_action not in ("flag", "block") or retrieval_action not in ("flag", "quarantine"):
            raise ValueError(f"bad injection actions {input_action!r}/{retrieval_action!r}")
        self.threshold = threshold
        self.input_action, self.retrieval_action = input_action, retrieval_action

    def _note(self, ctx: GuardContext, where: str, index: int | None, res: InjectionResult,
              action: str) -> None:
        ctx.notes.setdefault("injection", []).append(
            {"where": where, "index": index, "score": res.score, "rules": list(res.rules),
             "action": action})

    def before_input(self, ctx: GuardContext, text: str) -> str:
        res = scan(text)
        if res.score < self.threshold:
            return text
        self._note(ctx, "input", None, res, self.input_action)
        if self.input_action == "block":
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
            res = InjectionResult()
            for text in filter(None, texts):
                for rule in (found := scan(text)).rules:
                    res.add(rule, 0.0)
                res.score = max(res.score, found.score)
            if res.score < self.threshold:
                kept.append(item)
                continue
            self._note(ctx, "retrieval", i, res, self.retrieval_action)
            if self.retrieval_action == "flag":
                kept.append(item)
        return kept


def _context_of(item: Any) -> tuple[Any, ...]:
    """Neighbour turns a retrieval hit carries along (``MemoryHit.context``)."""
    context = getattr(item, "context", ())
    return tuple(context) if isinstance(context, (tuple, list)) else ()
