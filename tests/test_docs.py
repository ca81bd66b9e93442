"""The README's settings table documents every setting, with its default (the issues
require it; this keeps it true)."""

import re
from pathlib import Path

from assistant import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def _table() -> dict[str, tuple[str, str]]:
    """``env name -> (default cell, meaning cell)`` of the Configuration section's table."""
    section = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3:
            continue
        for env in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            rows.setdefault(env, (cells[1], cells[2]))
    return rows


def _env(name: str, field) -> str:  # type: ignore[no-untyped-def]
    return field.validation_alias.choices[0] if field.validation_alias else f"LASTMILE_{name.upper()}"


def test_every_setting_has_a_row_in_the_settings_table() -> None:
    table = _table()
    missing = [_env(n, f) for n, f in Settings.model_fields.items() if _env(n, f) not in table]
    assert missing == [], f"no row in the README's Configuration table for {missing}"
    assert all(meaning for _, meaning in table.values())


def _same(default: object, cell: str) -> bool:
    """Whether the row's first backticked value is ``default`` (numbers compared as numbers)."""
    found = re.search(r"`([^`]*)`", cell)
    if found is None:
        return False
    value = found.group(1)
    if isinstance(default, bool):
        return value == str(default).lower()
    if isinstance(default, (int, float)):
        try:
            return float(value) == float(default)
        except ValueError:
            return False
    return value == str(default)


def test_each_rows_default_is_the_settings_default() -> None:
    table = _table()
    wrong = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if field.is_required() or not isinstance(default, (bool, int, float, str)):
            continue  # unset, a path, a mapping: the row says it in words
        if isinstance(default, str) and (not default or len(default) > 40):
            continue  # an empty string reads "unset"; a long prompt is described
        cell = table[_env(name, field)][0]
        if not _same(default, cell):
            wrong.append(f"{_env(name, field)}: default {default!r}, README says {cell!r}")
    assert wrong == []


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
