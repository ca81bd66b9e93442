"""The README documents every setting (the issue requires it; this keeps it true)."""

from pathlib import Path

from assistant import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    for name, field in Settings.model_fields.items():
        env = field.validation_alias.choices[0] if field.validation_alias else f"LASTMILE_{name.upper()}"
        assert f"`{env}`" in README or f"{env}`" in README, f"{env} missing from README"


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
