"""The attack rig for ``tests/security/``: the real server (FastAPI + Gradio under
uvicorn, on loopback), ``LASTMILE_AUTH=password``, four users (two ``user``, one
``reviewer``, one ``admin``), and the real ``openai`` provider pointed at a loopback
``FaultServer`` that records every request body — so "did the PII leave the box?" is
answered by reading what the fake provider actually received.

Each test file replays one family of findings from the security review as an attack on
this rig; file names start with ``test_sec_`` (pytest's default import mode needs
basenames unique across ``tests/``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant import Assistant, Settings
from assistant.testing import FaultServer
from memory.accounts import Accounts

#: user id → (role, password)
USERS: dict[str, tuple[str, str]] = {
    "alice": ("user", "alice-password-1"),
    "bob": ("user", "bob-password-22"),
    "rita": ("reviewer", "rita-password-333"),
    "adam": ("admin", "adam-password-4444"),
}


@dataclass
class Rig:
    """One running deployment under attack."""

    url: str
    bot: Assistant
    provider: FaultServer
    settings: Settings
    keys: dict[str, str] = field(default_factory=dict)  # user id → live API key
    _clients: list[httpx.Client] = field(default_factory=list)

    @staticmethod
    def password(user: str) -> str:
        """The sign-in password of one of the rig's users."""
        return USERS[user][1]

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.bot.store.engine)  # type: ignore[attr-defined]

    def client(self, **kwargs: Any) -> httpx.Client:
        """A raw HTTP client of the server (closed at teardown)."""
        kwargs.setdefault("timeout", 30)
        client = httpx.Client(base_url=self.url, **kwargs)
        self._clients.append(client)
        return client

    def sign_in(self, user: str, password: str | None = None) -> httpx.Client:
        """A client signed in through the real login form (its cookie jar holds the session)."""
        client = self.client()
        response = client.post("/login", data={"username": user,
                                               "password": password or USERS[user][1]})
        assert response.status_code < 400, f"sign-in of {user} failed: {response.status_code}"
        return client

    def api(self, user: str) -> Any:
        """The real ``openai`` SDK, as ``user`` (their API key), against our ``/v1``."""
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.keys[user], max_retries=0,
                             timeout=60)

    def provider_bodies(self) -> str:
        """Every request body the fake remote provider received, as one JSON text."""
        return "\n".join(json.dumps(r.body) for r in self.provider.requests)

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def fake_provider() -> Iterator[FaultServer]:
    """A loopback OpenAI-compatible provider that records every request (echo replies)."""
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture
def rig_settings(tmp_path: Path, database_url: str, fake_provider: FaultServer) -> Settings:
    """Settings of the deployment under attack; tests may ``model_copy(update=...)`` it."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, auth="password",
                    providers="openai:gpt-4o-mini", openai_api_key="sk-test-not-a-real-key",
                    openai_base_url=fake_provider.url + "/v1", retry_attempts=1,
                    sample_corpus=False)


@pytest.fixture
def make_rig(rig_settings: Settings, fake_provider: FaultServer,
             live_server: Callable[..., tuple[str, Callable[[], None]]]) -> Iterator[Callable[..., Rig]]:
    """``make_rig(**settings_overrides) -> Rig``: the server started, the users made."""
    made: list[Rig] = []

    def make(**overrides: Any) -> Rig:
        settings = rig_settings.model_copy(update=overrides) if overrides else rig_settings
        bot = Assistant(settings)
        accounts = Accounts(bot.store.engine)  # type: ignore[attr-defined]
        keys = {}
        for user, (role, password) in USERS.items():
            accounts.upsert(user, password=password, role=role)
            keys[user] = accounts.issue_key(user)
        url, _stop = live_server(bot)
        rig = Rig(url=url, bot=bot, provider=fake_provider, settings=settings, keys=keys)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()
        rig.bot.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    """The default deployment: password sign-in, SQLite and PostgreSQL."""
    return make_rig()
