"""Settings: env prefix, .env files, defaults, and clear validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from assistant import Settings


def test_defaults_need_no_configuration() -> None:
    settings = Settings()
    assert settings.data_dir == Path(".lastmile")
    assert settings.provider_specs == ["local"]
    assert settings.resolved_database_url.endswith(".lastmile/lastmile.db")
    assert settings.resolved_local_model_path is not None
    assert settings.resolved_local_model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_env_prefix_and_sdk_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LASTMILE_PROVIDERS", "anthropic:claude-sonnet-4-5, openai:gpt-4o-mini ,local")
    monkeypatch.setenv("LASTMILE_MAX_REPLY_TOKENS", "64")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = Settings()
    assert settings.provider_specs == ["anthropic:claude-sonnet-4-5", "openai:gpt-4o-mini", "local"]
    assert settings.max_reply_tokens == 64
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(settings)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LASTMILE_DATA_DIR=/srv/lastmile\nLASTMILE_TEMPERATURE=0.1\n")
    settings = Settings()  # the autouse fixture chdir'ed into tmp_path
    assert settings.data_dir == Path("/srv/lastmile") and settings.temperature == 0.1


@pytest.mark.parametrize("name,value", [("LASTMILE_PROVIDERS", " , "),
                                        ("LASTMILE_TEMPERATURE", "5"),
                                        ("LASTMILE_PORT", "0")])
def test_bad_values_fail_validation(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_a_child_process_gets_only_the_lastmile_settings_it_is_given(monkeypatch) -> None:
    from assistant.settings import child_environment

    monkeypatch.setenv("LASTMILE_DATABASE_URL", "sqlite:///parent.db")
    monkeypatch.setenv("LASTMILE_TEST_PROBE", "1")
    env = child_environment({"LASTMILE_DATABASE_URL": "sqlite:///child.db", "OPENBLAS_NUM_THREADS": "1"})
    assert env["LASTMILE_DATABASE_URL"] == "sqlite:///child.db"
    assert "LASTMILE_TEST_PROBE" not in env and env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["PATH"]  # the rest of the parent's environment is kept
