"""Personal data and secrets: found by pattern, confirmed by checksum, then redacted.

Why regex + validators and not Presidio: Presidio needs spaCy models we cannot ship, and
for the data that matters most here (cards, IBANs, keys) a checksum is a stronger signal
than an NER model. Every pattern is paired with a validator (Luhn, mod-97, SSN ranges,
``ipaddress``, Shannon entropy) so near-misses like order numbers, prices and years pass.

Design: text entering long-term memory is redacted, and with ``always=True`` input is
redacted before it is stored. Text leaving the machine is redacted at the egress, in
front of each remote provider (``assistant.redaction``), whatever path it took; the
input guard only refuses a ``block`` kind in the user's own message early (before it is
stored) when the chain is led by a remote provider.

Written-out forms count: card numbers with spaces, dashes or dots (mixed ones in a card's
grouping too, and followed by an expiry or CVV), IBANs in any case with or without spaces,
dashes or dots, full-width digits and no-break spaces (``fold``), Unicode email addresses,
and obfuscated emails ("jane dot doe at example dot com", "jane(at)example(dot)com",
"jane [at] example [dot] com").
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TypeVar

from assistant.errors import InputRejected
from assistant.pii_modes import KINDS, MODES, parse_modes
from guardrails.base import Guard, GuardContext
from guardrails.normalize import item_text, with_text

__all__ = ["KINDS", "MODES", "PIIFinding", "PIIGuard", "detect", "iban_ok", "luhn_ok",
           "parse_modes", "redact", "shannon_entropy"]

T = TypeVar("T")
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


#: IBAN length per country (SWIFT IBAN registry). A lower-case candidate must match it:
#: without the upper-case convention, the country's length is what keeps random
#: identifiers (1 in 97 pass mod-97) from reading as bank accounts.
IBAN_LENGTHS = dict(
    AD=24, AE=23, AL=28, AT=20, AZ=28, BA=20, BE=16, BG=22, BH=22, BI=27, BR=29, BY=28, CH=21,
    CR=22, CY=28, CZ=24, DE=22, DJ=27, DK=18, DO=28, EE=20, EG=29, ES=24, FI=18, FK=18, FO=18,
    FR=27, GB=22, GE=22, GI=23, GL=18, GR=27, GT=28, HN=28, HR=21, HU=28, IE=22, IL=23, IQ=23,
    IS=26, IT=27, JO=30, KW=30, KZ=20, LB=28, LC=32, LI=21, LT=20, LU=20, LV=21, LY=25, MC=27,
    MD=24, ME=22, MK=19, MN=20, MR=27, MT=31, MU=30, NI=28, NL=18, NO=15, OM=23, PK=24, PL=28,
    PS=29, PT=25, QA=29, RO=24, RS=22, RU=33, SA=24, SC=31, SD=18, SE=24, SI=19, SK=24, SM=27,
    SO=23, ST=25, SV=28, TL=23, TN=24, TR=26, UA=29, VA=22, VG=24, XK=20, YE=30)


def iban_ok(iban: str) -> bool:
    """mod-97 over the compact form; a lower-case one must also have its country's length."""
    compact = re.sub(r"[ .-]", "", iban)
    iban = compact.upper()
    ok = 15 <= len(iban) <= 34 and iban[:2].isalpha() and iban[2:4].isdigit() and iban.isalnum()
    if ok and (compact != iban or iban[:2] in IBAN_LENGTHS):
        ok = IBAN_LENGTHS.get(iban[:2]) == len(iban)
    return ok and int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


def shannon_entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


_SECRETS = [
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?"
                               r"-----END [A-Z ]*PRIVATE KEY-----")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|AIPA)[A-Z0-9]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b")),
    ("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("stripe_key", re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
]
_GENERIC = re.compile(r"(?<![A-Za-z0-9_+/=.-])[A-Za-z0-9_+=-]{32,120}(?![A-Za-z0-9_+/=-]|\.\w)")
# Unicode letters count (jané@exämple.com is as personal as the ASCII one).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ .-]?[A-Z0-9]{4}){2,7}(?:[ .-]?[A-Z0-9]{1,3})?\b", re.I)
#: a run of digit groups with short separators; ``_cards`` looks for a card inside it
#: (a card followed by its expiry or CVV, "4111 1111 1111 1111 12/27", is still a card).
_CARD = re.compile(r"(?<![\d-])(?<!\d\.)\d+(?:[ ._/-]{1,3}\d+)*")
_CARD_SHAPES = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 4, 2),
                (4, 4, 4, 3), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2)}
# Obfuscated emails: "at"/"dot" as words, or bracketed "(at)" "[dot]" "{at}", any case.
_DOTW = r"(?:\s*[(\[{]\s*dot\s*[)\]}]\s*|\s+dot\s+|\.)"
_ATW = r"(?P<at>\s*[(\[{]\s*at\s*[)\]}]\s*|\s+at\s+|\s*@\s*)"
_SPELLED_EMAIL = re.compile(
    # never start inside a chain ("a dot b dot c"), and bound the chains: linear time
    rf"(?<![\w.+-])(?<!dot\s)(?<![)\]}}])(?<![)\]}}]\s)"
    rf"(?P<local>[a-z0-9_%+-]+(?:{_DOTW}[a-z0-9_%+-]+){{0,6}}){_ATW}"
    rf"(?P<domain>[a-z0-9-]+(?:{_DOTW}[a-z0-9-]+){{0,6}}{_DOTW}[a-z]{{2,24}})\b(?!\.\w|@)", re.I)
_SPELLED_DOT = re.compile(r"\s*[(\[{]\s*dot\s*[)\]}]\s*|\s+dot\s+", re.I)
_NOT_ADDRESS_WORDS = {"a", "an", "the", "this", "that", "my", "your", "our", "his", "her",
                      "their", "its", "some", "any", "all", "one", "dot", "at"}
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}"
                   r"(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
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


def _emails(text: str) -> list[PIIFinding]:
    found = [PIIFinding("email", *m.span(), m.group()) for m in _EMAIL.finditer(text)]
    for m in _SPELLED_EMAIL.finditer(text):
        at, local, domain = m.group("at").strip().lower(), m.group("local"), m.group("domain")
        spelled = bool(_SPELLED_DOT.search(local) or _SPELLED_DOT.search(domain))
        if at == "@" and not spelled:
            continue  # a plain address: _EMAIL's
        # "have a look at python.org" is prose; "jane at example dot com" or
        # "jane.doe at example.com" is an address written so that filters miss it.
        if at == "at" and not (spelled or "." in local):
            continue
        firsts = (re.split(_DOTW, local, flags=re.I)[-1], re.split(_DOTW, domain, flags=re.I)[0])
        if any(word.lower() in _NOT_ADDRESS_WORDS for word in firsts):
            continue  # "arrived at the dot com boom"
        found.append(PIIFinding("email", *m.span(), m.group(), "spelled"))
    return found


def _cards(text: str) -> list[PIIFinding]:
    out = []
    for m in _CARD.finditer(text):
        run = m.group()
        spans = [g.span() for g in re.finditer(r"\d+", run)]
        i = 0
        while i < len(spans):
            j = _card_at(run, spans, i)
            if j is None:
                i += 1
                continue
            a, b = spans[i][0], spans[j][1]
            out.append(PIIFinding("card", m.start() + a, m.start() + b, run[a:b]))
            i = j + 1
    return out


def _card_at(run: str, spans: list[tuple[int, int]], i: int) -> int | None:
    """The last digit group of the longest card starting at group ``i``: 13-19 digits
    passing Luhn, one kind of separator, or mixed ones between groups shaped like a
    card's (4-4-4-4, 4-6-5)."""
    if run[spans[i][0]] not in "23456" or spans[i][1] - spans[i][0] < 4:
        return None  # every card's first group has at least four digits
    total, ends = 0, []
    for a, b in spans[i:i + 8]:
        total += b - a
        ends.append(total)
        if total > 19:
            break
    for j in range(i + len(ends) - 1, i - 1, -1):
        if not 13 <= ends[j - i] <= 19:
            continue
        part = spans[i:j + 1]
        digits = "".join(run[a:b] for a, b in part)
        if len(set(digits)) < 2 or not luhn_ok(digits):
            continue
        start, end = part[0][0], part[-1][1]
        if re.match(r"[.,]\d", run[end:end + 2]) or re.search(r"\d[.,]$", run[:start]):
            continue  # a decimal fraction ("ratio 4111111111111111.5") is a number
        seps = {run[p[1]:q[0]] for p, q in pairwise(part)}
        shape = tuple(b - a for a, b in part)
        if (len(seps) <= 1 and all(len(x) == 1 or x.strip() == "" for x in seps)) \
                or shape in _CARD_SHAPES:
            return j
    return None


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
    "email": _emails,
    "iban": lambda t: [PIIFinding("iban", *m.span(), m.group())
                       for m in _IBAN.finditer(t) if iban_ok(m.group())],
    "card": _cards, "ip": _ips, "national_id": _national_ids, "phone": _phones,
}


_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"


def fold(text: str) -> str:
    """The same text, one character for one, with look-alikes made plain: full-width and
    other compatibility forms (NFKC, when one character), any Unicode space as a space,
    any dash as ``-``. Positions stay valid for the original, so "４１１１…" or a card
    number with no-break spaces is found where it stands."""
    if text.isascii():
        return text
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        elif ch in _DASHES:
            out.append("-")
        else:
            plain = unicodedata.normalize("NFKC", ch)
            out.append(plain if len(plain) == 1 else ch)
    return "".join(out)


def detect(text: str, kinds: tuple[str, ...] = KINDS) -> list[PIIFinding]:
    """All findings, non-overlapping (earlier kinds in ``KINDS`` win), by position."""
    folded = fold(text)
    taken: list[PIIFinding] = []
    for kind in KINDS:
        if kind in kinds:
            for f in _DETECTORS[kind](folded):
                if folded is not text:
                    f = replace(f, text=text[f.start:f.end])
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
    """Redact personal data from long-term memory writes (and, with ``always``, from
    input before it is stored).

    Egress safety does not rest on this guard: every request bound for a remote provider
    is redacted in front of that provider (``assistant.redaction``), whatever the path.
    ``before_input`` redacts when ``always``; when the chain is led by a remote provider
    (``ctx.destination == "remote"``) it only refuses a ``block`` kind up front,
    so the user hears why before anything is stored. ``before_memory_write`` always acts
    (a ``block`` kind keeps the item out of memory). Counts per kind go to ``ctx.pii``.
    """

    def __init__(self, modes: Mapping[str, str] | str | None = None, *, default: str = "redact",
                 always: bool = False) -> None:
        self.modes = parse_modes(modes)
        self.default = self.modes.pop("default", default)
        self.always = always

    def _apply(self, ctx: GuardContext, text: str) -> str:
        new, findings = redact(text, self.modes, self.default)
        if findings:
            ctx.pii = dict(Counter(ctx.pii) + Counter(f.kind for f in findings))
        return new

    def before_input(self, ctx: GuardContext, text: str) -> str:
        if self.always:
            return self._apply(ctx, text)
        if ctx.destination == "remote" and "block" in (*self.modes.values(), self.default):
            redact(text, self.modes, self.default)  # raises InputRejected for a block kind
        return text

    def before_memory_write(self, ctx: GuardContext, item: T) -> T | None:
        if (text := item_text(item)) is None:
            return item
        try:
            return with_text(item, self._apply(ctx, text))
        except InputRejected:
            return None
