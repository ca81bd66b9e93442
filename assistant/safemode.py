"""Moved to ``assistant.layers.safemode`` (the model layers live together in ``assistant/layers/``);
this path keeps older imports working."""

from typing import Any

import assistant.layers.safemode as _moved
from assistant.layers.safemode import *  # noqa: F403 - the moved module's names, re-exported
from assistant.layers.safemode import __all__  # noqa: F401


def __getattr__(name: str) -> Any:  # the module's other names too
    return getattr(_moved, name)
