"""Personal data and secrets: found by pattern, confirmed by checksum, then redacted.

Why regex + validators and not Presidio: Presidio needs spaCy models we cannot ship, and
for the data that matters most here (cards, IBANs, keys) a checksum is a stronger signal
than an NER model. Every pattern is paired with a validator (Luhn, mod-97, SSN ranges,
``ipaddress``, Shannon entropy) so near-misses like order numbers, prices and years pass.

Design: text leaving the machine (``ctx.notes["destination"] == "remote"``) or entering
long-term memory is redacted; with ``always=True`` input is redacted before it is stored.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from assistant.errors import InputRejected
from guardrails.base import Guard, GuardContext
from guardrails.normalize import item_text, with_text

__all__ = ["KINDS", "MODES", "PIIFinding", "PIIGuard", "detect", "iban_ok", "luhn_ok",
           "parse_modes", "redact", "shannon_entropy"]

T = TypeVar("T")
KINDS = ("secret", "email", "iban", "card", "ip", "national_id", "phone")  # priority order
MODES = ("redact", "mask", "block", "allow")
LABELS = {"secret": "an API key or secret", "email": "an email address", "card": "a payment "
          "card number", "iban": "a bank account number (IBAN)", "ip": "an IP address",
          "national_id": "a national ID number", "phone": "a phone number"}


@dataclass(frozen=True)
class PIIFinding:
    kind: str
    start: int
    end: int
    text: str
    detail: str = ""  # e.g. "ssn", "aws_access_key"

    def __repr__(self) -> str:  # never print the value itself into logs
        return f"PIIFinding({self.kind!r}, {self.start}, {self.end}, detail={self.detail!r})"


def luhn_ok(digits: str) -> bool:
    nums = [int(c) for c in reversed(digits)]
    return (sum(nums[::2]) + sum(sum(divmod(2 * d, 10)) for d in nums[1::2])) % 10 == 0


def iban_ok(iban: str) -> bool:
    iban = iban.replace(" ", "").upper()
    ok = 15 <= len(iban) <= 34 and iban[:2].isalpha() and iban[2:4].isdigit() and iban.isalnum()
    return ok and int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


def shannon_entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


_SECRETS = [
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|AIPA)[A-Z0-9]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b")),
    ("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("stripe_key", re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
]
_GENERIC = re.compile(r"(?<![A-Za-z0-9_+/=.-])[A-Za-z0-9_+=-]{32,120}(?![A-Za-z0-9_+/=-]|\.\w)")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_NINO = re.compile(r"\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])\b")
_PHONE = re.compile(r"(?<![\w+.,$€£¥#/(-])(?:\+ ?\(?|\()?\d[\d ().-]{5,20}\d(?![\w$€£%/-]|[.,]\d)")
_DATE = re.compile(r"^(?:\d{4}[-./ ]\d{1,2}[-./ ]\d{1,2}|\d{1,2}[-./ ]\d{1,2}[-./ ]\d{2,4})$")
_NANP = re.compile(r"^(?:1[ .-]?)?\(?[2-9]\d{2}\)?[ .-]?[2-9]\d{2}[ .-]\d{4}$")


def _secrets(text: str) -> list[PIIFinding]:
    found = [PIIFinding("secret", m.start(), m.end(), m.group(), name)
             for name, rx in _SECRETS for m in rx.finditer(text)]
    for m in _GENERIC.finditer(text):
        tok = m.group()
        if all(any(map(f, tok)) for f in (str.isupper, str.islower, str.isdigit)) \
                and shannon_entropy(tok) >= 4.3:  # hex hashes top out at 4.0 bits/char
            found.append(PIIFinding("secret", m.start(), m.end(), tok, "high_entropy"))
    return found


def _cards(text: str) -> list[PIIFinding]:
    out = []
    for m in _CARD.finditer(text):
        digits, seps = re.sub(r"\D", "", m.group()), set(re.sub(r"\d", "", m.group()))
        if 13 <= len(digits) <= 19 and len(seps) <= 1 and len(set(digits)) > 1 and luhn_ok(digits):
            out.append(PIIFinding("card", m.start(), m.end(), m.group()))
    return out


def _ips(text: str) -> list[PIIFinding]:
    out = []
    for rx, ctor in ((_IPV4, ipaddress.IPv4Address), (_IPV6, ipaddress.IPv6Address)):
        for m in rx.finditer(text):
            try:  # 3+ groups: "1::2" is a slice, "a::b" a scope, not an address
                ip = ctor(m.group())
                if rx is _IPV6 and len([g for g in m.group().split(":") if g]) < 3:
                    continue
            except ValueError:
                continue
            if not (ip.is_loopback or ip.is_unspecified):
                out.append(PIIFinding("ip", m.start(), m.end(), m.group(), f"ipv{ip.version}"))
    return out


def _national_ids(text: str) -> list[PIIFinding]:
    out = []
    for m in _SSN.finditer(text):
        area, group, serial = m.group(1), m.group(3), m.group(4)
        if (area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
                and m.group() not in ("078-05-1120", "219-09-9999")):
            out.append(PIIFinding("national_id", m.start(), m.end(), m.group(), "ssn"))
    for m in _NINO.finditer(text):
        if m.group(1) not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            out.append(PIIFinding("national_id", m.start(), m.end(), m.group(), "uk_nino"))
    return out


def _phones(text: str) -> list[PIIFinding]:
    out = []
    for m in _PHONE.finditer(text):
        cand, digits = m.group(), re.sub(r"\D", "", m.group())
        if ("  " in cand or cand.count("(") != cand.count(")") or _DATE.match(cand)
                or re.fullmatch(r"\d{3}-\d{2}-\d{4}", cand)):  # SSN-shaped, never a phone
            continue
        bare, spaced = cand.lstrip("("), bool(re.search(r"\D", cand))
        if (8 <= len(digits) <= 15 if cand.startswith("+")  # E.164; trunk 0 / intl 00; NANP
                else spaced and (10 if bare.startswith("00") else 9) <= len(digits) <= 15
                if bare.startswith("0") else bool(_NANP.match(cand))):
            out.append(PIIFinding("phone", m.start(), m.end(), cand))
    return out


_DETECTORS: dict[str, Callable[[str], list[PIIFinding]]] = {
    "secret": _secrets,
    "email": lambda t: [PIIFinding("email", *m.span(), m.group()) for m in _EMAIL.finditer(t)],
    "iban": lambda t: [PIIFinding("iban", *m.span(), m.group())
                       for m in _IBAN.finditer(t) if iban_ok(m.group())],
    "card": _cards, "ip": _ips, "national_id": _national_ids, "phone": _phones,
}


def detect(text: str, kinds: tuple[str, ...] = KINDS) -> list[PIIFinding]:
    """All findings, non-overlapping (earlier kinds in ``KINDS`` win), by position."""
    taken: list[PIIFinding] = []
    for kind in KINDS:
        if kind in kinds:
            for f in _DETECTORS[kind](text):
                if not any(f.start < t.end and t.start < f.end for t in taken):
                    taken.append(f)
    return sorted(taken, key=lambda f: f.start)


def _mask(f: PIIFinding) -> str:
    if f.kind == "email":
        local, _, domain = f.text.partition("@")
        return f"{local[:1]}***@{domain}"
    alnum = [i for i, ch in enumerate(f.text) if ch.isalnum()]
    hidden = set(alnum[:-4])  # keep the last four letters/digits and all separators
    return "".join("*" if i in hidden else ch for i, ch in enumerate(f.text))


def parse_modes(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"redact"`` or ``"card=block,email=mask,default=redact"`` → ``{kind: mode}``
    (key ``"default"`` for unnamed kinds). Meant for a ``LASTMILE_PII_MODE`` setting."""
    items = dict(spec) if isinstance(spec, Mapping) else {}
    if isinstance(spec, str):
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, sep, mode = part.partition("=")
            items[kind.strip() if sep else "default"] = (mode if sep else kind).strip()
    for kind, mode in items.items():
        if mode not in MODES or (kind != "default" and kind not in KINDS):
            raise ValueError(f"bad PII mode {kind}={mode}; kinds {KINDS}, modes {MODES}")
    return items


def redact(text: str, modes: Mapping[str, str] | str | None = None,
           default: str = "redact") -> tuple[str, list[PIIFinding]]:
    """Apply per-kind modes; returns the new text and every finding (``allow`` ones too).
    Raises ``InputRejected`` naming the *kinds* (never the values) if any is ``block``."""
    default = (table := parse_modes(modes)).get("default", default)
    findings = detect(text)
    blocked = sorted({f.kind for f in findings if table.get(f.kind, default) == "block"})
    if blocked:
        what = " and ".join(LABELS[k] for k in blocked)
        raise InputRejected(f"blocked personal data: {', '.join(blocked)}", guard="pii",
                            user_message=f"Your message seems to contain {what}. For your safety "
                            "it was not sent; please remove it and try again.")
    for f in reversed(findings):
        mode = table.get(f.kind, default)
        if mode != "allow":
            new = f"[{f.kind.upper()}]" if mode == "redact" else _mask(f)
            text = text[:f.start] + new + text[f.end:]
    return text, findings


class PIIGuard(Guard):
    """Redact personal data from remote-bound input and from long-term memory writes.

    ``before_input`` acts when ``always`` or ``ctx.notes["destination"] == "remote"``;
    ``before_memory_write`` always acts (a ``block`` kind keeps the item out of memory).
    Counts per kind go to ``ctx.notes["pii"]``.
    """

    name = "pii"

    def __init__(self, modes: Mapping[str, str] | str | None = None, *, default: str = "redact",
                 always: bool = False) -> None:
        self.modes = parse_modes(modes)
        self.default = self.modes.pop("default", default)
        self.always = always

    def _apply(self, ctx: GuardContext, text: str) -> str:
        new, findings = redact(text, self.modes, self.default)
        if findings:
            ctx.notes["pii"] = dict(Counter(ctx.notes.get("pii", {})) + Counter(f.kind for f in findings))
        return new

    def before_input(self, ctx: GuardContext, text: str) -> str:
        if self.always or ctx.notes.get("destination") == "remote":
            return self._apply(ctx, text)
        return text

    def before_memory_write(self, ctx: GuardContext, item: T) -> T | None:
        if (text := item_text(item)) is None:
            return item
        try:
            return with_text(item, self._apply(ctx, text))
        except InputRejected:
            return None
