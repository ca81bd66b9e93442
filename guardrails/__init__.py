"""Guardrails: hook objects run before input, after retrieval, after the model and
before a memory write. ``default_pipeline`` is what an ``Assistant`` runs unless told
otherwise."""

from guardrails.base import Guard, GuardChain, GuardContext
from guardrails.citations import CitationReport, CitedSentence, verify_citations
from guardrails.injection import InjectionGuard, scan
from guardrails.input import InputLimits
from guardrails.normalize import Normalize
from guardrails.pii import PIIFinding, PIIGuard, detect, parse_modes, redact
from guardrails.scope import ScopeGuard

__all__ = [
    "CitationReport",
    "CitedSentence",
    "Guard",
    "GuardChain",
    "GuardContext",
    "InjectionGuard",
    "InputLimits",
    "Normalize",
    "PIIFinding",
    "PIIGuard",
    "ScopeGuard",
    "default_pipeline",
    "detect",
    "parse_modes",
    "redact",
    "scan",
    "verify_citations",
]


def default_pipeline(*, max_chars: int = 20_000, pii_modes: str = "redact", pii_always: bool = False,
                     injection_input: str = "flag", scope: Guard | None = None) -> list[Guard]:
    """Limits, then normalisation, then PII (redacted before text goes to a remote
    provider or into memory), then prompt-injection checks on input and retrieved text,
    then (when the deployment states its scope) the out-of-scope check."""
    guards = [InputLimits(max_chars), Normalize(), PIIGuard(pii_modes, always=pii_always),
              InjectionGuard(input_action=injection_input)]
    return guards + ([scope] if scope is not None else [])
