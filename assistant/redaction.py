"""Moved to ``assistant.layers.redaction`` (the model layers live together in ``assistant/layers/``);
this path keeps older imports working."""

from typing import Any

import assistant.layers.redaction as _moved
from assistant.layers.redaction import *  # noqa: F403 - the moved module's names, re-exported
from assistant.layers.redaction import __all__  # noqa: F401


def __getattr__(name: str) -> Any:  # the module's other names too
    return getattr(_moved, name)
