"""Citation verdicts as a person reads them, drawn beside the reply text (issue 13).

The stored reply is the model's text; its sentence checks live in the reply record.
Here each checked sentence is wrapped in a span carrying one of four calibrated verdicts
(supported / partly / not supported / not checkable) and a small badge after it; an
answer with factual claims of which none is supported says "not verified against your
documents" (also when nothing was checked at all). Model text is HTML-escaped: what a
model writes is shown, never run.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

from guardrails.claims import is_claim, parse_markers, split_sentences

__all__ = ["LABELS", "NOT_VERIFIED", "UNVERIFIED_CLASS", "annotated_html", "display_verdict",
           "evidence_html", "not_verified", "safe_markdown"]

#: The four verdicts a reader sees, by the checker's (current and coming) verdict names.
_DISPLAY = {"supported": "supported", "partial": "partly", "partly": "partly",
            "unsupported": "not_supported", "not_supported": "not_supported",
            "invalid_citation": "not_supported", "uncited": "not_checkable",
            "not_checkable": "not_checkable"}
LABELS = {"supported": "✓ supported", "partly": "◐ partly supported",
          "not_supported": "✗ not supported", "not_checkable": "? not checkable"}
NOT_VERIFIED = "not verified against your documents"
UNVERIFIED_CLASS = "lm-unverified"
_SEP = r"(?:\s*\[[^\]\n]{1,24}\]|[^\w\[])*?"
_TAIL = re.compile(r"(?:\s*\[[^\]\n]{1,24}\]|[^\w\s\[])*")


def _get(item: Any, name: str, default: Any = None) -> Any:
    return item.get(name, default) if isinstance(item, dict) else getattr(item, name, default)


def display_verdict(check: Any) -> str | None:
    """The reader's verdict for a sentence check; ``None`` for a non-claim left uncited
    (a greeting, a question back: nothing to check, nothing to flag)."""
    verdict = str(_get(check, "verdict") or "")
    if verdict == "uncited" and not _get(check, "claim", True):
        return None
    verdict = str(_get(check, "status") or "") or verdict  # the checker's calibrated verdict
    return _DISPLAY.get(verdict, "not_checkable")


def not_verified(text: str, checks: Sequence[Any] | None) -> bool:
    """True when the answer makes a factual claim and no claim is supported by a shown
    source (with no check at all, the claims are found in the text itself)."""
    if checks:
        claims = [c for c in checks if _get(c, "claim", True)]
        return bool(claims) and not any(display_verdict(c) == "supported" for c in claims)
    return any(is_claim(parse_markers(s)[0]) for s in split_sentences(text or ""))


def _span(text: str, sentence: str, start: int) -> tuple[int, int] | None:
    words = re.findall(r"\w+", sentence)
    if not words:
        return None
    found = re.compile(_SEP.join(re.escape(w) for w in words)).search(text, start)
    if found is None:
        return None
    tail = _TAIL.match(text, found.end())
    return found.start(), tail.end() if tail else found.end()


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]+`", re.DOTALL)


def safe_markdown(text: str) -> str:
    """Model text for the chat's Markdown: HTML outside code escaped (shown, never run);
    code blocks and spans are left to the renderer, which shows them literally."""
    out, cursor = [], 0
    for m in _CODE.finditer(text):
        out += [_escape(text[cursor:m.start()]), m.group(0)]
        cursor = m.end()
    out.append(_escape(text[cursor:]))
    return "".join(out)


def annotated_html(text: str, checks: Iterable[Any]) -> str:
    """``text`` escaped, each checked claim wrapped in ``span.lm-claim.lm-v-<verdict>``
    followed by its badge; a sentence that cannot be located is left plain."""
    pieces, cursor = [], 0
    for check in checks:
        shown = display_verdict(check)
        span = _span(text, str(_get(check, "text") or ""), cursor) if shown else None
        if span is None or shown is None:
            continue
        pieces.append(_escape(text[cursor:span[0]]))
        why = _get(check, "reason") or _get(check, "reasons")
        if isinstance(why, (list, tuple)):
            why = ", ".join(str(w) for w in why)
        title = f' title="{html.escape(str(why))}"' if why else ""
        # The verdict rides in a class too: the chat's HTML sanitizer drops data- attributes.
        pieces.append(f'<span class="lm-claim lm-v-{shown}" data-verdict="{shown}">'
                      f'{_escape(text[span[0]:span[1]])}</span> '
                      f'<span class="lm-vbadge lm-v-{shown}" data-verdict="{shown}"{title}>'
                      f'{LABELS[shown]}</span>')
        cursor = span[1]
    pieces.append(_escape(text[cursor:]))
    return "".join(pieces)


def evidence_html(snippet: str, evidence: Iterable[str]) -> str:
    """The source snippet escaped, with each evidence span found in it highlighted."""
    marks = sorted({e for e in evidence if e and e in snippet}, key=len, reverse=True)
    if not marks:
        return _escape(snippet)
    pattern = re.compile("|".join(re.escape(m) for m in marks))
    out, cursor = [], 0
    for m in pattern.finditer(snippet):
        out += [_escape(snippet[cursor:m.start()]), f'<mark class="lm-evidence">{_escape(m.group(0))}</mark>']
        cursor = m.end()
    out.append(_escape(snippet[cursor:]))
    return "".join(out)
