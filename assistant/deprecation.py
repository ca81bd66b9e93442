"""Old names that keep working, with a ``DeprecationWarning`` naming the new one.

``Moved("sessions", "new")`` as a class attribute makes ``bot.new_session(...)`` call
``bot.sessions.new(...)``: the methods moved to sub-objects (``bot.sessions``,
``bot.facts``) without breaking code written against the README of the time.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, overload

__all__ = ["Moved"]


class Moved:
    """A deprecated method that now lives at ``<instance>.<attr>.<name>``."""

    def __init__(self, attr: str, name: str) -> None:
        self.attr, self.name, self.old = attr, name, name

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Moved: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Callable[..., Any]: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Moved | Callable[..., Any]:
        if obj is None:
            return self  # the class attribute itself
        target = getattr(getattr(obj, self.attr), self.name)
        old, new = f"{type(obj).__name__}.{self.old}", f"{self.attr}.{self.name}"

        @functools.wraps(target)
        def call(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(f"{old}() is deprecated; use .{new}()", DeprecationWarning, stacklevel=2)
            return target(*args, **kwargs)

        return call
