"""Deprecated path: ``FaultServer`` lives in ``assistant.testing`` (``assistant.testing.faultserver``).

Kept so ``from assistant.faultserver import FaultServer`` in users' own tests still works.
"""

import warnings

from assistant.testing.faultserver import NONSENSE_SHAPES, Fault, FaultServer, RecordedRequest, echo

__all__ = ["NONSENSE_SHAPES", "Fault", "FaultServer", "RecordedRequest", "echo"]

warnings.warn("assistant.faultserver moved to assistant.testing; import FaultServer from there",
              DeprecationWarning, stacklevel=2)
