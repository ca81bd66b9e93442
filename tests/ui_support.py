"""What the browser tests share: selectors, artefact screenshots, polling for the server
state a click should bring about. (Fixtures live in conftest.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

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


class LiveServer:
    """``ui.server.create_server`` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, bot, **kwargs) -> None:  # type: ignore[no-untyped-def]
        import threading

        import uvicorn

        from ui.server import create_server

        config = uvicorn.Config(create_server(bot, **kwargs), host="127.0.0.1", port=0,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                pytest.fail("the lastmile server did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
