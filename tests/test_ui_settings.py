"""The admin Settings tab (issue 16): an admin changes the model in a real browser and the
next turn uses it, in this process and in another one on the same database; a `user`
neither sees the tab nor gets through ``/admin/settings`` (403). The runtime-settings
store itself (checks, overrides, back to the environment) is tested without a browser."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from ui_support import BOT, SELECTED, send, shot

from assistant import Assistant, Settings
from assistant.testing import FaultServer
from memory.accounts import Accounts
from memory.runtime_settings import RuntimeSettings, check_value

HEADER_AUTH = {"auth": "header", "auth_trusted_proxies": "127.0.0.1/32"}


def _config(tmp_path: Path, server: FaultServer, database_url: str | None = None) -> Settings:
    return Settings(data_dir=tmp_path / "data",
                    database_url=database_url or f"sqlite:///{tmp_path / 'ui.db'}",
                    providers="openai:alpha", openai_api_key=SecretStr("sk-test"),
                    openai_base_url=server.url + "/v1", retry_attempts=1, index_turns=False,
                    cache_mode="off", facts_enabled=False, summarize_sessions=False,
                    sample_corpus=False, **HEADER_AUTH)


def _models(server: FaultServer) -> list[str]:
    return [r.body.get("model") for r in server.requests if isinstance(r.body, dict)]


def test_overrides_reach_another_process_and_go_back(settings: Settings) -> None:
    with FaultServer() as server:
        config = settings.model_copy(update={
            "providers": "openai:alpha", "openai_api_key": SecretStr("sk-test"),
            "openai_base_url": server.url + "/v1", "retry_attempts": 1, "index_turns": False,
            "facts_enabled": False, "summarize_sessions": False, "control_refresh_s": 0.0})
        with Assistant(config) as one, Assistant(config) as other:
            one.chat("before", session_id="s", user_id="ann")
            one.runtime.set({"providers": "openai:beta", "temperature": 0.9,
                             "system_prompt": "Answer in one line. " * 30,
                             "citation_policy": "strip", "review_threshold": 0.1}, by="ada")
            reply = other.chat("after", session_id="t", user_id="bob")
            assert reply.provider == "openai:beta"
            assert other.settings.temperature == 0.9 and other.citation_guard.policy == "strip"
            assert server.requests[-1].body["temperature"] == 0.9
            assert "Answer in one line." in server.requests[-1].body["messages"][0]["content"]
            other.runtime.reset(by="ada")
            assert one.chat("again", session_id="s", user_id="ann").provider == "openai:alpha"
            assert one.settings.temperature == config.temperature
            assert one.citation_guard.policy == config.citation_policy
    assert _models(server) == ["alpha", "beta", "alpha"]


@pytest.mark.parametrize(("name", "value", "why"), [
    ("providers", "nonsense:x", "unknown provider"), ("providers", " , ", "unknown provider"),
    ("temperature", 7, "less than or equal to 2"), ("temperature", "warm", "valid number"),
    ("citation_policy", "ignore", "match pattern"), ("review_threshold", -1, "greater than"),
    ("system_prompt", "", "1 to"), ("system_prompt", "x" * 9000, "1 to"),
    ("local_model_path", "/etc/passwd", "no GGUF file"), ("database_url", "sqlite://", "cannot be changed"),
])
def test_bad_values_are_refused_with_a_reason(name: str, value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_value(name, value)


def test_a_row_gone_bad_is_ignored(settings: Settings) -> None:
    from sqlalchemy import insert

    from memory.db import open_engine
    from memory.models import ControlFlag, utcnow

    engine = open_engine(settings.resolved_database_url)
    try:
        runtime = RuntimeSettings(engine, refresh_s=0)
        runtime.set({"temperature": 0.5})
        with engine.begin() as conn:
            conn.execute(insert(ControlFlag).values(name="setting:citation_policy", value='"nope"',
                                                    updated_at=utcnow()))
        assert runtime.overrides() == {"temperature": 0.5}
        assert runtime.apply(settings).temperature == 0.5
        runtime.reset()
        assert runtime.apply(settings) is settings
    finally:
        engine.dispose()


def test_the_settings_route_is_for_admins_only(live_server, tmp_path: Path) -> None:
    with FaultServer() as server:
        bot = Assistant(_config(tmp_path, server))
        accounts = Accounts(bot.store.engine)
        accounts.upsert("ann", role="user")
        accounts.upsert("ada", role="admin")
        url, _ = live_server(bot)
        as_ann, as_ada = ({"X-Forwarded-User": name} for name in ("ann", "ada"))
        with httpx.Client(base_url=url, timeout=30) as client:
            for method in ("GET", "PUT", "DELETE"):
                refused = client.request(method, "/admin/settings", headers=as_ann,
                                         json={"temperature": 1.5})
                assert refused.status_code == 403, method
            assert client.get("/admin/settings").status_code == 403  # no proxy header: nobody
            assert bot.runtime.overrides() == {}
            bad = client.put("/admin/settings", headers=as_ada, content=b"{not json")
            assert bad.status_code == 400
            bad = client.put("/admin/settings", headers=as_ada, json={"temperature": 9})
            assert bad.status_code == 400 and "temperature" in bad.json()["detail"]
            bad = client.put("/admin/settings", headers=as_ada, json=["temperature"])
            assert bad.status_code == 400
            ok = client.put("/admin/settings", headers=as_ada, json={"temperature": 1.5})
            assert ok.status_code == 200 and ok.json()["overridden"] == ["temperature"]
            assert ok.json()["environment"]["temperature"] == 0.2
            assert client.get("/admin/settings", headers=as_ada).json()["settings"]["temperature"] == 1.5
            back = client.delete("/admin/settings", headers=as_ada)
            assert back.status_code == 200 and back.json()["overridden"] == []
        assert bot.settings.temperature == 0.2


@pytest.mark.slow
def test_admin_changes_the_model_and_a_user_cannot_open_settings(live_server, pages,
                                                                 tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from playwright.sync_api import expect

    with FaultServer() as server:
        bot = Assistant(_config(tmp_path, server))
        accounts = Accounts(bot.store.engine)
        accounts.upsert("ann", role="user")
        accounts.upsert("ada", role="admin")
        url, _ = live_server(bot)

        ann = pages.new(extra_http_headers={"X-Forwarded-User": "ann"})
        ann.goto(url)
        expect(ann.locator(SELECTED)).to_have_count(1)
        expect(ann.get_by_role("tab", name="Chat")).to_be_visible()
        expect(ann.get_by_role("tab", name="Settings")).to_have_count(0)
        expect(ann.locator("#lm-set-providers")).to_have_count(0)

        ada = pages.new(extra_http_headers={"X-Forwarded-User": "ada"})
        ada.goto(url)
        expect(ada.locator(SELECTED)).to_have_count(1)
        send(ada, "first question")
        expect(ada.locator(BOT).last.locator(".lm-provider")).to_have_text("openai:alpha")
        ada.get_by_role("tab", name="Settings").click()
        box = ada.locator("#lm-set-providers textarea")
        expect(box).to_have_value("openai:alpha")
        expect(ada.locator("#lm-settings-status")).to_contain_text("openai:alpha")
        box.fill("openai:beta")
        ada.locator("#lm-settings-save").click()
        expect(ada.locator("#lm-settings-status")).to_contain_text("openai:beta")
        expect(ada.locator("#lm-settings-status")).to_contain_text(
            "Provider chain: the environment says openai:alpha")
        shot(ada, "settings")
        assert bot.runtime.overrides() == {"providers": "openai:beta"}

        ada.get_by_role("tab", name="Chat").click()
        send(ada, "second question")
        expect(ada.locator(BOT).last.locator(".lm-provider")).to_have_text("openai:beta")
        expect(ada.locator(BOT).last).to_contain_text("echo: second question")
        assert _models(server)[-1] == "beta"

        ada.get_by_role("tab", name="Settings").click()
        ada.locator("#lm-settings-reset").click()
        expect(ada.locator("#lm-set-providers textarea")).to_have_value("openai:alpha")
        assert bot.runtime.overrides() == {}
    assert _models(server)[0] == "alpha"
