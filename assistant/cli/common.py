"""What every ``lastmile`` command shares: the settings loader and the stderr console.

Kept apart from ``assistant.cli`` (the parser) so command modules can import it
without importing each other.
"""

from __future__ import annotations

from pydantic import ValidationError
from rich.console import Console

from assistant.errors import ConfigurationError
from assistant.settings import Settings

__all__ = ["console", "load_settings"]

#: Operator-facing messages go to stderr, one line each; stdout stays for data (``--json``).
console = Console(stderr=True, soft_wrap=True, highlight=False)


def load_settings() -> Settings:
    """``Settings()`` with a bad value reported as one ``ConfigurationError`` line."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "LASTMILE_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
        raise ConfigurationError(f"invalid {field}: {first['msg']}") from exc
