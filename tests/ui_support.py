"""What the browser tests share: selectors, artefact screenshots, polling for the server
state a click should bring about. (Fixtures live in conftest.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
BOT = "#lm-chat [data-testid='bot']"
INPUT = "#lm-input textarea"
SELECTED = "#lm-sessions label.selected"


def shot(page: Any, name: str) -> None:
    """Save a full-page screenshot as a test artefact (build/screenshots/)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def until(condition, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    """Poll a server-side condition the page's action should bring about."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return value


def send(page: Any, text: str) -> None:
    page.locator(INPUT).fill(text)
    page.keyboard.press("Enter")
