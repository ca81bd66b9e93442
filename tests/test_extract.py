"""Structured outputs: ``extract`` / ``Assistant.extract`` return validated pydantic objects.

The local path runs the REAL SmolLM2 under a JSON-schema grammar (slow tests); the repair
and re-ask paths use ``ScriptedModel``; the remote paths use the real openai/anthropic
SDKs against ``assistant.testing.faultserver`` on loopback.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel, Field

from assistant import Assistant, Settings
from assistant.errors import (
    ConfigurationError,
    ExtractionFailed,
    RuntimeFailure,
    SchemaNotSupported,
)
from assistant.extract import extract, parse_reply
from assistant.testing import Fault, FaultServer
from assistant.providers import ScriptedModel
from assistant.providers.anthropic import AnthropicModel
from assistant.providers.openai import OpenAIModel


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=130)


class Mood(str, enum.Enum):
    happy = "happy"
    sad = "sad"
    angry = "angry"


class Review(BaseModel):
    mood: Mood
    stars: int = Field(ge=1, le=5)


class Flag(BaseModel):
    is_question: bool


class Item(BaseModel):
    name: str
    qty: int = Field(ge=1)


class Order(BaseModel):
    customer: str
    items: list[Item] = Field(min_length=1, max_length=3)


class Meeting(BaseModel):
    date: dt.date


class Contact(BaseModel):
    name: str
    email: str | None = None
    phone: str | None = None


class Price(BaseModel):
    amount: float = Field(gt=0)
    currency: Literal["USD", "EUR", "GBP"]


class Tags(BaseModel):
    tags: list[str] = Field(min_length=1, max_length=3)


class City(BaseModel):
    name: str
    country: str


class Trip(BaseModel):
    origin: City
    destination: City


class Task(BaseModel):
    title: str
    priority: Literal["low", "medium", "high"]
    done: bool


# ------------------------------------------------------------------ real local model
@pytest.fixture(scope="module")
def local():  # type: ignore[no-untyped-def]
    from assistant.providers.local import LocalModel

    return LocalModel.from_settings(Settings(local_n_ctx=1024))


# (schema, text, a check the object must pass). Checks accept what a 135M model can
# fairly be expected to get; the type guarantees are the point.
LOCAL_CASES = [
    (Person, "Alice is 31 years old.", lambda o: o.age == 31 and "Alice" in o.name),
    (Review, "Five stars! I am so happy with it.", lambda o: isinstance(o.mood, Mood)),
    (Flag, "Where is the station?", lambda o: isinstance(o.is_question, bool)),
    (Order, "Bob ordered 2 apples.", lambda o: 1 <= len(o.items) <= 3 and o.items[0].qty >= 1),
    (Meeting, "We meet on 2025-03-14.", lambda o: isinstance(o.date, dt.date)),
    (Contact, "Call Dana on 555-0100.", lambda o: isinstance(o.name, str)),
    (Price, "It costs 12.50 EUR.", lambda o: o.amount > 0 and o.currency in ("USD", "EUR", "GBP")),
    (Tags, "A post about cats and dogs.", lambda o: 1 <= len(o.tags) <= 3),
    (Trip, "Flying from Paris, France to Rome, Italy.", lambda o: isinstance(o.origin, City)),
    (Task, "Urgent: fix the login bug. Not done yet.", lambda o: o.priority in ("low", "medium", "high")),
]


@pytest.mark.slow
@pytest.mark.parametrize(("schema", "text", "check"), LOCAL_CASES, ids=[c[0].__name__ for c in LOCAL_CASES])
def test_local_model_returns_valid_objects(local, schema, text, check) -> None:  # type: ignore[no-untyped-def]
    obj = extract(local, schema, text, max_tokens=60)
    assert isinstance(obj, schema)
    schema.model_validate(obj.model_dump())  # a whole, valid object
    assert check(obj), obj


@pytest.mark.slow
def test_local_schema_the_grammar_cannot_express_is_a_clear_error(local) -> None:  # type: ignore[no-untyped-def]
    class Node(BaseModel):  # recursive: the llama.cpp converter has no rule for it
        value: int
        children: list[Node] = []

    with pytest.raises(SchemaNotSupported, match="grammar cannot express") as err:
        extract(local, Node, "a tree")
    assert isinstance(err.value, ConfigurationError)


# ------------------------------------------------------------------ repair and re-ask
def test_parse_reply_repairs_almost_json() -> None:
    obj, errors = parse_reply(Person, "Sure! ```json\n{'name': 'Ann', 'age': 40,}\n```")
    assert errors == [] and obj == Person(name="Ann", age=40)
    obj, errors = parse_reply(Person, "no json at all")
    assert obj is None and errors


def test_repair_path_needs_no_reask() -> None:
    model = ScriptedModel(['{"name": "Ann", "age": 40'])  # truncated: json-repair closes it
    assert extract(model, Person, "Ann is 40.") == Person(name="Ann", age=40)
    assert len(model.requests) == 1
    request = model.requests[0]
    assert request.response_schema == Person.model_json_schema()
    assert request.metadata["purpose"] == "extract"
    assert "Ann is 40." in request.messages[-1].content


def test_reask_names_the_validation_errors_then_succeeds() -> None:
    model = ScriptedModel(['{"name": "Ann", "age": -5}', '{"name": "Ann", "age": 40}'])
    assert extract(model, Person, "Ann is 40.", metadata={"user_id": "u1"}) == Person(name="Ann", age=40)
    first, second = model.requests
    assert [first.metadata["purpose"], second.metadata["purpose"]] == ["extract", "extract-reask"]
    assert second.metadata["user_id"] == "u1"
    assert isinstance(second.messages[-2], AIMessage) and second.messages[-2].content == '{"name": "Ann", "age": -5}'
    feedback = second.messages[-1]
    assert isinstance(feedback, HumanMessage) and "age" in feedback.content
    assert "greater than or equal to 0" in feedback.content


def test_impossible_output_is_a_typed_error_never_a_half_object() -> None:
    model = ScriptedModel(['{"name": "Ann"}', "I cannot do that."])
    with pytest.raises(ExtractionFailed) as err:
        extract(model, Person, "Ann.")
    exc = err.value
    assert isinstance(exc, RuntimeFailure) and exc.attempts == 2 and exc.raw == "I cannot do that."
    assert exc.errors and "Person" in str(exc)
    assert len(model.requests) == 2
    with pytest.raises(ExtractionFailed):  # no re-ask allowed: fails after one call
        extract(ScriptedModel(['{"age": 3}']), Person, "x", max_reasks=0)


def test_conversation_source_becomes_a_transcript() -> None:
    model = ScriptedModel(['{"name": "Bo", "age": 7}'])
    extract(model, Person, [HumanMessage("my son Bo is 7"), AIMessage("noted")], instructions="Who?")
    request = model.requests[0]
    assert len(request.messages) == 2 and request.messages[0].content.startswith("Who?")
    assert request.messages[1].content == "human: my son Bo is 7\nai: noted"


def test_assistant_extract_counts_reasks_in_the_ledger(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url, index_turns=False)
    model = ScriptedModel(['{"name": "Ann", "age": "old"}', '{"name": "Ann", "age": 40}'])
    with Assistant(settings, model=model) as bot:
        assert bot.extract(Person, "Ann is 40.", user_id="alice") == Person(name="Ann", age=40)
        calls = bot.ledger.calls(user_id="alice")  # type: ignore[union-attr]
    assert sorted(c["purpose"] for c in calls) == ["extract", "extract-reask"]


# ------------------------------------------------------------------ remote providers
@pytest.fixture
def fs() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def test_openai_native_structured_output(fs: FaultServer) -> None:
    model = OpenAIModel("m", api_key="sk-test", base_url=fs.url + "/v1", read_timeout_s=2)
    fs.enqueue(Fault.ok('{"origin": {"name": "Paris", "country": "France"}, '
                        '"destination": {"name": "Rome", "country": "Italy"}}'))
    trip = extract(model, Trip, "Paris to Rome")
    assert trip.destination == City(name="Rome", country="Italy")
    body = fs.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == Trip.model_json_schema()


def test_anthropic_forced_tool_call(fs: FaultServer) -> None:
    model = AnthropicModel("m", api_key="sk-test", base_url=fs.url, read_timeout_s=2)
    fs.enqueue(Fault.ok('{"title": "ship it", "priority": "urgent", "done": false}'),  # bad enum
               Fault.ok('{"title": "ship it", "priority": "high", "done": false}'))
    assert extract(model, Task, "Ship it, urgently.") == Task(title="ship it", priority="high", done=False)
    first, second = (r.body for r in fs.requests)
    assert first["tool_choice"] == {"type": "tool", "name": "reply"}
    assert first["tools"][0]["input_schema"] == Task.model_json_schema()
    assert "priority" in json.dumps(second["messages"][-1])  # the re-ask named the bad field
