"""Golden suite files for ``lastmile eval`` and the canary: YAML or JSONL, validated in
full before anything runs.

A suite is cases; a case is a user's setup (facts they told before, documents in their
collection) and a conversation whose turns carry expectations: text it must / must not
contain, sources it must cite, the verdicts its sentences may have, a latency and a cost
ceiling. With the scripted model each turn also says what the model answers
(``reply``; ``{source:NAME}`` becomes the number the prompt gave the document NAME), so
the suite runs deterministically; with ``model: configured`` the real chain answers.

A malformed file fails with one ``ConfigurationError`` naming the line and the key (pydantic
validation mapped back to the YAML node or JSONL line), so a typo costs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.errors import ConfigurationError

__all__ = ["Case", "Document", "Expect", "Suite", "Turn", "load_suite"]

VERDICTS = ("supported", "partial", "unsupported", "uncited", "invalid_citation", "not_supported",
            "not_checkable")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    contains: list[str] = Field(default_factory=list)
    not_contains: list[str] = Field(default_factory=list)
    #: Document names (file name or title) at least one supported or partial citation names.
    cites: list[str] = Field(default_factory=list)
    #: Verdicts every checked claim sentence must have one of.
    verdicts: list[Literal[VERDICTS]] | None = None  # type: ignore[valid-type]
    status: Literal["ok", "incomplete", "error"] = "ok"
    max_latency_ms: float | None = Field(None, gt=0)
    max_cost_usd: float | None = Field(None, ge=0)


class Turn(_Strict):
    user: str = Field(min_length=1, max_length=20_000)
    reply: str | None = None  # the scripted model's answer (ignored by a configured model)
    expect: Expect = Field(default_factory=Expect)


class Document(_Strict):
    name: str = Field(min_length=1, max_length=120, pattern=r"^[\w][\w .-]*\.(md|txt)$")
    text: str = Field(min_length=1)


class Case(_Strict):
    id: str = Field(min_length=1, max_length=120)
    user: str = Field("eval", min_length=1, max_length=128)
    facts: list[str] = Field(default_factory=list)
    documents: list[Document] = Field(default_factory=list)
    turns: list[Turn] = Field(min_length=1)


class Suite(_Strict):
    name: str = Field(min_length=1, max_length=200)
    model: Literal["scripted", "configured"] = "scripted"
    #: Settings for the run (e.g. citation_policy); validated by ``Settings`` at run time.
    settings: dict[str, Any] = Field(default_factory=dict)
    cases: list[Case] = Field(min_length=1)

    @field_validator("cases")
    @classmethod
    def _unique_ids(cls, cases: list[Case]) -> list[Case]:
        seen: set[str] = set()
        for case in cases:
            if case.id in seen:
                raise ValueError(f"case id {case.id!r} appears twice")
            seen.add(case.id)
        return cases


def load_suite(path: Path) -> Suite:
    """The validated suite in ``path`` (``.yaml``/``.yml`` or ``.jsonl``)."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read the suite ({exc.__class__.__name__}: {exc})") from None
    if Path(path).suffix.lower() == ".jsonl":
        return _jsonl(path, raw)
    if Path(path).suffix.lower() not in (".yaml", ".yml"):
        raise ConfigurationError(f"{path}: a suite is a .yaml, .yml or .jsonl file")
    return _yaml(path, raw)


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _yaml(path: Path, raw: str) -> Suite:
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        raise ConfigurationError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}:1: a suite is a mapping with name, cases (and model, settings)")
    data.setdefault("name", Path(path).stem)
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        line = _line_of(node, tuple(first["loc"]))
        where = _where(tuple(first["loc"]))
        raise ConfigurationError(f"{path}:line {line}: {where}: {first['msg']}") from None


def _line_of(node: Any, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest YAML node on ``loc`` that exists."""
    line = (node.start_mark.line + 1) if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(part)]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _jsonl(path: Path, raw: str) -> Suite:
    """One case per line; an optional first line ``{"suite": {name, model, settings}}``."""
    header: dict[str, Any] = {"name": Path(path).stem}
    cases: list[Case] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path}:line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise ConfigurationError(f"{path}:line {number}: each line is a JSON object (a case)")
        try:
            if "suite" in item and not cases:
                header.update(Suite.model_validate({**header, **item["suite"], "cases": [
                    {"id": "-", "turns": [{"user": "-"}]}]}).model_dump(exclude={"cases"}))
            else:
                cases.append(Case.model_validate(item))
        except (ValidationError, TypeError) as exc:
            if isinstance(exc, TypeError):
                raise ConfigurationError(f"{path}:line {number}: suite: must be an object") from None
            first = exc.errors()[0]
            raise ConfigurationError(f"{path}:line {number}: {_where(tuple(first['loc']))}: "
                             f"{first['msg']}") from None
    try:
        return Suite.model_validate({**header, "cases": cases})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigurationError(f"{path}: {_where(tuple(first['loc']))}: {first['msg']}") from None
