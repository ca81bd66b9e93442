"""The model layers are one family: every layer says its ``children()``, one ``walk``
looks through any stack of them (an embedder's own layer included), and one chunk
consumer folds a stream for the turn and the citation re-ask."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

from langchain_core.messages import HumanMessage

from assistant.layers.cache import CacheModel
from assistant.layers.consume import StreamFold, consume
from assistant.layers.fallback import FallbackModel
from assistant.layers.ledger import LedgerModel
from assistant.layers.redaction import RedactingModel
from assistant.layers.resilience import BreakerModel, RetryingModel
from assistant.layers.routing import RouterModel
from assistant.layers.safemode import SafeModeModel
from assistant.providers import ScriptedModel
from assistant.providers.base import (
    ChatModel,
    ModelChunk,
    ModelLayer,
    ModelRequest,
    ModelWrapper,
    Usage,
    children,
    first_leaf,
    walk,
)
from assistant.reply import Restart
from ui.dashboard import breaker_states


class Off:
    def kill_switch(self) -> bool:
        return False


class Tagging(ModelWrapper):
    """An embedder's own layer: subclassing the public base is all it takes to be walked."""

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        yield from self.inner.request(request)


def test_every_layer_is_a_model_layer_and_walk_sees_through_them() -> None:
    remote = ScriptedModel(["r"], provider="openai", model="m")
    local = ScriptedModel(["l"], provider="local")
    cheap = ScriptedModel(["c"], provider="anthropic", model="h")
    strong = FallbackModel([BreakerModel(RetryingModel(RedactingModel(remote))), Tagging(local)])
    chain = SafeModeModel(RouterModel(BreakerModel(cheap), strong), Off(), local=local)
    for layer in (chain, chain.inner, strong, strong.models[0]):
        assert isinstance(layer, ModelLayer)
    # depth-first in call order, each once (local is the fallback's member and safe mode's)
    assert [type(n).__name__ for n in walk(chain)] == [
        "SafeModeModel", "RouterModel", "FallbackModel", "BreakerModel", "RetryingModel",
        "RedactingModel", "ScriptedModel", "Tagging", "ScriptedModel", "BreakerModel", "ScriptedModel"]
    assert first_leaf(chain) is remote  # the strong tier's first member: the destination
    assert [n for n in walk(chain) if not children(n)] == [remote, local, cheap]
    # the dashboard finds both breakers through router, fallback and an embedder's layer
    assert list(breaker_states(chain)["provider"]) == ["openai:m", "anthropic:h"]


def test_a_duck_typed_wrapper_is_still_walked() -> None:
    leaf = ScriptedModel(["x"], provider="openai")

    class Old(ChatModel):  # written before ModelLayer: only an ``inner`` attribute
        def __init__(self, inner: ChatModel) -> None:
            self.inner = inner

        def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
            yield from self.inner.request(request)

    assert list(walk(Old(leaf)))[1:] == [leaf] and first_leaf(Old(leaf)) is leaf


def test_the_private_wrapper_base_is_a_deprecated_alias() -> None:
    import assistant.resilience as old

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert old._Wrapper is ModelWrapper
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    for cls in (LedgerModel, CacheModel, RedactingModel, BreakerModel, RetryingModel, SafeModeModel):
        assert issubclass(cls, ModelWrapper)


class Restarting(ChatModel):
    provider = "fake"

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        yield ModelChunk(text="first ", provider="a:1")
        yield ModelChunk(restart=True, discarded="first ", reason="Boom: down", provider="b:2")
        yield ModelChunk(text="second", provider="b:2", notice="degraded")
        yield ModelChunk(usage=Usage(3, 4), finish_reason="stop", provider="b:2")


def test_one_consumer_folds_text_restarts_usage_provider_and_notice() -> None:
    fold = StreamFold(provider="?")
    shown = list(consume(Restarting(), ModelRequest([HumanMessage(content="hi")]), fold))
    assert shown[0] == "first " and isinstance(shown[1], Restart) and shown[2] == "second"
    assert shown[1].discarded == "first " and shown[1].reason == "Boom: down"
    assert shown[1].provider == "b:2"
    assert (fold.text, fold.provider, fold.notice, fold.restarts) == ("second", "b:2", "degraded", 1)
    assert fold.usage == Usage(3, 4) and fold.finish_reason == "stop"
