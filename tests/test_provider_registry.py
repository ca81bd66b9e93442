"""A provider is one file plus one registry line: a provider defined and registered here,
in the test suite, is built from ``LASTMILE_PROVIDERS`` through the normal Settings →
``build_model`` path, wrapped like any remote provider (egress redaction, ledger, retry,
kill switch, breaker), priced, checked by ``doctor`` and accepted by the settings —
with no other file touched."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import ValidationError

from assistant import Assistant, Settings
from assistant.cli.doctor import run_checks
from assistant.errors import UnknownProvider
from assistant.layers.killswitch import KillSwitchModel
from assistant.layers.ledger import LedgerModel
from assistant.layers.redaction import RedactingModel
from assistant.layers.resilience import BreakerModel, RetryingModel
from assistant.layers.safemode import SafeModeModel
from assistant.providers import REMOTE, build_model, build_provider, registry
from assistant.providers.base import (
    ChatModel,
    ModelChunk,
    ModelRequest,
    Usage,
    first_leaf,
    walk,
)
from memory.db import open_engine
from memory.ledger import Ledger, PriceTable


class EchoProvider(ChatModel):
    """The "one new file": a provider class with ``from_settings`` (what the registry's
    default ``from_spec`` calls). It echoes what it was sent, so a test sees the wire."""

    provider = "echotest"
    context_window = 4096

    def __init__(self, model: str, api_key: str | None) -> None:
        self.model, self.api_key = model, api_key
        self.sent: list[Sequence[BaseMessage]] = []

    @classmethod
    def from_settings(cls, settings: Settings, *, model: str | None = None) -> EchoProvider:
        key = settings.provider_key(cls.provider)
        return cls(model or "echo-1", key.get_secret_value() if key else None)

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        self.sent.append(request.messages)
        yield ModelChunk(text=f"echo: {request.messages[-1].content}")
        yield ModelChunk(usage=Usage(1_000, 500), finish_reason="stop")


class LocalEcho(EchoProvider):
    provider = "echolocal"


@pytest.fixture
def echo() -> Iterator[registry.ProviderEntry]:
    """The "one registry line", registered from here and removed afterwards."""
    entry = registry.register(registry.ProviderEntry(
        "echotest", f"{__name__}:EchoProvider", remote=True, key_env="ECHOTEST_API_KEY",
        prices={"echotest:echo-*": (2.0, 10.0)}))
    yield entry
    registry.unregister("echotest")


@pytest.fixture
def echolocal() -> Iterator[registry.ProviderEntry]:
    entry = registry.register(registry.ProviderEntry("echolocal", f"{__name__}:LocalEcho"))
    yield entry
    registry.unregister("echolocal")


def kinds(model: object) -> list[str]:
    return [type(node).__name__ for node in walk(model)]


def test_a_registered_remote_provider_is_built_from_the_env_and_remote_wrapped(
        echo: registry.ProviderEntry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LASTMILE_PROVIDERS", "echotest:echo-2")
    monkeypatch.setenv("ECHOTEST_API_KEY", "sk-echo")
    monkeypatch.setenv("LASTMILE_DATA_DIR", str(tmp_path))
    settings = Settings()
    engine = open_engine(f"sqlite:///{tmp_path / 'r.db'}")
    model = build_model(settings, Ledger(engine, PriceTable(settings.prices)))

    # the same stack as openai's: breaker(kill switch(retry(ledger(redaction(provider)))))
    assert isinstance(model, SafeModeModel)
    assert kinds(model) == ["SafeModeModel", "BreakerModel", "KillSwitchModel", "RetryingModel",
                            "LedgerModel", "RedactingModel", "EchoProvider"]
    leaf = first_leaf(model)
    assert isinstance(leaf, EchoProvider) and leaf.model == "echo-2" and leaf.api_key == "sk-echo"
    assert "echotest" in REMOTE and "echotest" in list(REMOTE)
    assert all(isinstance(n, (SafeModeModel, BreakerModel, KillSwitchModel, RetryingModel,
                              LedgerModel, RedactingModel, EchoProvider)) for n in walk(model))

    # the egress layer really applies: the provider never sees the address
    chunks = list(model.request(ModelRequest(
        [HumanMessage(content="mail me at jane.doe@example.com")], metadata={"purpose": "chat"})))
    assert "jane.doe@example.com" not in str(leaf.sent[-1][-1].content)
    assert "[EMAIL" in str(leaf.sent[-1][-1].content)
    assert "".join(c.text for c in chunks).startswith("echo: ")
    # and the registry's prices priced the call in the ledger
    row = Ledger(engine).calls()[-1]
    assert row["provider"] == "echotest:echo-2"
    assert row["cost_usd"] == pytest.approx((1_000 * 2.0 + 500 * 10.0) / 1e6)


def test_the_settings_doctor_and_prices_read_the_entry(echo: registry.ProviderEntry,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.delenv("ECHOTEST_API_KEY", raising=False)
    settings = Settings(data_dir=tmp_path, providers="echotest,local", route_cheap="echotest")
    assert settings.provider_key("echotest") is None
    check = next(c for c in run_checks(settings) if c.name == "provider echotest")
    assert not check.ok and "ECHOTEST_API_KEY" in check.hint
    monkeypatch.setenv("ECHOTEST_API_KEY", "sk-echo")
    check = next(c for c in run_checks(settings) if c.name == "provider echotest")
    assert check.ok and check.detail == "key set"
    assert PriceTable().price("echotest:echo-7") == (2.0, 10.0)
    assert PriceTable({"echotest:echo-7": (1.0, 1.0)}).price("echotest:echo-7") == (1.0, 1.0)
    with pytest.raises(ValidationError, match="unknown provider"):
        Settings(data_dir=tmp_path, route_cheap="echonot")


def test_a_registered_local_provider_is_unwrapped_free_and_local(
        echolocal: registry.ProviderEntry, database_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url, providers="echolocal",
                        index_turns=False, facts_model="rules", summary_model="extractive")
    assert "echolocal" not in REMOTE
    assert isinstance(build_provider("echolocal", settings), LocalEcho)
    assert PriceTable().price("echolocal:echo-1") == (0.0, 0.0)
    with Assistant(settings) as bot:
        reply = bot.chat("my mail is jane.doe@example.com", session_id="s")
        assert bot._destination() == "local"
        assert kinds(bot.model)[-2:] == ["LedgerModel", "LocalEcho"]
    assert reply.ok and reply.provider == "echolocal:echo-1"
    assert "jane.doe@example.com" in reply.text  # stays here: nothing redacts a local call


def test_a_remote_one_through_the_assistant_is_the_turns_destination(
        echo: registry.ProviderEntry, database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHOTEST_API_KEY", "sk-echo")
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url, providers="echotest,local",
                        index_turns=False, facts_model="rules", summary_model="extractive")
    with Assistant(settings) as bot:
        reply = bot.chat("hello there", session_id="s")
        assert bot._destination() == "remote"
        rows = bot.ledger.calls(turn_id=reply.user_message_id)  # type: ignore[union-attr]
    assert reply.ok and reply.provider == "echotest:echo-1" and reply.text == "echo: hello there"
    assert [r["provider"] for r in rows] == ["echotest:echo-1"]
    assert rows[0]["cost_usd"] == pytest.approx((1_000 * 2.0 + 500 * 10.0) / 1e6)


def test_an_unregistered_name_is_unknown(echo: registry.ProviderEntry, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    registry.unregister("echotest")
    with pytest.raises(UnknownProvider, match="known: local, scripted, openai, anthropic"):
        build_provider("echotest", settings)
    assert "echotest" not in REMOTE


def test_the_built_in_entries_name_real_classes() -> None:
    for name in ("local", "scripted", "openai", "anthropic"):
        entry = registry.entry(name)
        assert entry is not None
        cls = registry.provider_class(entry)
        assert issubclass(cls, ChatModel) and cls.provider in (name, "unknown", "scripted")
    assert set(REMOTE) == {"openai", "anthropic"}
