"""Guardrails: hook objects run before input, after retrieval, after the model and
before a memory write."""

from guardrails.base import Guard, GuardChain, GuardContext
from guardrails.input import InputLimits

__all__ = ["Guard", "GuardChain", "GuardContext", "InputLimits"]
