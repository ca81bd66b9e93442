"""The PII kinds and per-kind modes, and the parser of a ``LASTMILE_PII_MODE`` value.

A kernel module: ``Settings`` validates the setting with it when it loads, and the PII
guard (``guardrails.pii``) and the egress layer (``assistant.redaction``) apply it. It
lives here, not in ``guardrails/``, because the kernel may not import a layer.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["KINDS", "MODES", "parse_modes"]

KINDS = ("secret", "email", "iban", "card", "ip", "national_id", "phone")  # priority order
MODES = ("redact", "mask", "block", "allow")


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
