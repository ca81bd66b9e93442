"""Every error lastmile raises, in one place.

Callers branch on *kind*, not on message text, so the tree separates developer
mistakes (fix the code or config), runtime failures (retry, fall back, or tell the
user), and control signals (not failures at all: a guard said no, a turn was
cancelled)::

    LastmileError
    ├── ConfigurationError          developer / operator mistake; fix config, don't retry
    │   ├── ModelFileNotFound       a GGUF or embedding model file is missing
    │   ├── UnknownProvider         LASTMILE_PROVIDERS names something we can't build
    │   ├── SchemaNotSupported      extract(): the local JSON grammar cannot express a schema
    │   ├── ReplayFormatError       a replay/probe file is malformed (names the line or key)
    │   └── ContextWindowTooSmall   the window cannot hold the system prompt and the reply reserve
    ├── RuntimeFailure              the world misbehaved; the turn may be retried
    │   ├── ProviderError           a model call failed (translated from the SDK at its edge)
    │   │   ├── ProviderUnavailable     connection refused, timeout, 5xx
    │   │   │   ├── CircuitOpen         we stopped calling it for a while (breaker open)
    │   │   │   └── RemoteCallsDisabled the kill switch is on: no remote call is made
    │   │   ├── RateLimited             429; ``retry_after`` seconds when the server said
    │   │   ├── AuthenticationFailed    bad or missing key
    │   │   ├── BadProviderRequest      4xx the provider blamed on the request
    │   │   └── StreamInterrupted       died mid-stream; partial text is kept
    │   ├── StorageError
    │   │   ├── DatabaseUnavailable     the SQL database cannot be reached
    │   │   └── VectorStoreUnavailable  Chroma cannot be reached
    │   └── ExtractionFailed        extract(): no valid object after repair and a re-ask
    └── ControlSignal               not a failure: flow control surfaced to the caller
        ├── InputRejected           a guardrail refused the input (message is user-facing)
        │   └── EgressBlocked       a ``block`` PII kind was bound for a remote provider: not sent
        ├── SessionNotFound         no such session for this user
        ├── TurnStopped             the user pressed Stop: the partial reply is kept, marked stopped
        ├── FactNotFound            no such fact for this user (others' facts are invisible)
        ├── BudgetExceeded          a spend cap refused a paid call before it was made
        ├── DocumentRejected        ingest: a file is unreadable, encrypted, binary, empty or too big
        └── ReviewNotFound          no such review item (or it was already decided)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FALLBACK_KINDS",
    "AuthenticationFailed",
    "BadProviderRequest",
    "BudgetExceeded",
    "CircuitOpen",
    "ConfigurationError",
    "ContextWindowTooSmall",
    "ControlSignal",
    "DatabaseUnavailable",
    "DocumentRejected",
    "EgressBlocked",
    "ExtractionFailed",
    "FactNotFound",
    "InputRejected",
    "LastmileError",
    "ModelFileNotFound",
    "ProviderError",
    "ProviderUnavailable",
    "RateLimited",
    "RemoteCallsDisabled",
    "ReplayFormatError",
    "ReviewNotFound",
    "RuntimeFailure",
    "SchemaNotSupported",
    "SessionNotFound",
    "StorageError",
    "StreamInterrupted",
    "TurnStopped",
    "UnknownProvider",
    "VectorStoreUnavailable",
]


class LastmileError(Exception):
    """Root of the tree: ``except LastmileError`` catches everything we raise on purpose."""

    #: A line safe to show an end user (no internals, no secrets).
    user_message: str = "Something went wrong."
    #: Set by whoever gave up: the fallback chain's ``[(member label, error name), ...]``;
    #: the number of tries for ``ExtractionFailed``. Absent otherwise.
    attempts: Any

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        if user_message is not None:
            self.user_message = user_message


class ConfigurationError(LastmileError):
    """The code or configuration is wrong; retrying will not help."""

    user_message = "The assistant is misconfigured; ask the operator to run `lastmile doctor`."


class ModelFileNotFound(ConfigurationError):
    """A model file (GGUF, embedding weights) is not where settings say."""


class UnknownProvider(ConfigurationError):
    """A provider spec in ``LASTMILE_PROVIDERS`` cannot be built."""


class SchemaNotSupported(ConfigurationError):
    """``extract()`` was given a schema the local model's JSON grammar cannot express
    (e.g. regex patterns, recursive models); raised at call time, before any decoding."""


class ReplayFormatError(ConfigurationError):
    """A replay conversation or probe file is malformed. The message names the line
    (JSONL) or the key path (LoCoMo JSON); the replay has not started, nothing is written."""


class ContextWindowTooSmall(ConfigurationError):
    """A model's context window cannot hold the system prompt plus the reply reserve, so
    no turn could be answered with any context (issue 17: said at start, not as silent zeros)."""


class RuntimeFailure(LastmileError):
    """Something outside our code failed; the same call may succeed later."""


class ProviderError(RuntimeFailure):
    """A model provider failed. ``provider`` names which one."""

    user_message = "The model could not answer right now. Your message is saved; please try again."

    def __init__(self, message: str, *, provider: str = "", user_message: str | None = None) -> None:
        super().__init__(message, user_message=user_message)
        self.provider = provider


class ProviderUnavailable(ProviderError):
    """Connection refused, timed out, or a 5xx: worth falling back."""


class CircuitOpen(ProviderUnavailable):
    """The provider's circuit breaker is open: it failed repeatedly, so we skip it
    until a half-open probe shows it is back."""


class RemoteCallsDisabled(ProviderUnavailable):
    """The operator's kill switch is on: remote providers refuse before any network I/O.
    A kind of unavailability, so fallback moves on to a local model; breakers ignore it,
    so switching back off finds every circuit as it was."""

    user_message = ("Remote models are switched off right now. Your message is saved; "
                    "please try again later.")


class RateLimited(ProviderError):
    """The provider throttled us (429). ``retry_after``: seconds it asked us to wait."""

    def __init__(self, message: str, *, provider: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, provider=provider)
        self.retry_after = retry_after


class AuthenticationFailed(ProviderError):
    """The provider rejected our credentials."""


class BadProviderRequest(ProviderError):
    """The provider rejected the request itself (4xx other than auth/rate)."""


class StreamInterrupted(ProviderError):
    """The stream broke after some text arrived; ``partial`` holds that text."""

    user_message = "The reply was cut off. Your message is saved; please try again."

    def __init__(self, message: str, *, provider: str = "", partial: str = "") -> None:
        super().__init__(message, provider=provider)
        self.partial = partial


class StorageError(RuntimeFailure):
    """A store (SQL or vector) failed."""


class DatabaseUnavailable(StorageError):
    """The SQL database at ``url`` cannot be reached."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class VectorStoreUnavailable(StorageError):
    """Chroma at ``url`` (or its data dir) cannot be reached."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class ExtractionFailed(RuntimeFailure):
    """``extract()`` got no valid object: the output stayed invalid after JSON repair and
    one re-ask. ``errors`` are pydantic's error dicts from the last attempt, ``raw`` the
    model's last output verbatim; no partial object is ever returned."""

    user_message = "The assistant could not produce a valid structured answer; please try again."

    def __init__(self, message: str, *, errors: list[dict] | None = None, raw: str = "",
                 attempts: int = 0) -> None:
        super().__init__(message)
        self.errors, self.raw, self.attempts = list(errors or []), raw, attempts


class ControlSignal(LastmileError):
    """Not a failure: a decision the caller must surface."""


class InputRejected(ControlSignal):
    """A guardrail refused the user's input; ``user_message`` says why, kindly."""

    def __init__(self, message: str, *, user_message: str | None = None, guard: str = "") -> None:
        super().__init__(message, user_message=user_message or message)
        self.guard = guard


class EgressBlocked(InputRejected):
    """Personal data of a ``block`` kind (``kinds``) was in a request bound for the remote
    ``provider``; the egress layer refused it before any byte left. Fallback kind ``pii``
    lets a later (local) provider answer instead."""

    def __init__(self, message: str, *, provider: str = "", kinds: list[str] | None = None,
                 user_message: str | None = None) -> None:
        super().__init__(message, user_message=user_message, guard="pii")
        self.provider, self.kinds = provider, list(kinds or [])


class SessionNotFound(ControlSignal):
    """No session with that id exists for this user (other users' sessions are invisible)."""

    user_message = "That conversation does not exist."


class TurnStopped(ControlSignal):
    """The person stopped the reply (``ReplyStream.stop``): generation ends at the next
    chunk and what was written so far is stored, marked stopped. Not a failure."""

    user_message = "You stopped this reply."


class DocumentRejected(ControlSignal):
    """Ingest skipped one file (``path``); the message says why in one line, e.g. the
    size limit it exceeds. Other files of the same ingest are unaffected."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message, user_message=message)
        self.path = path


class ReviewNotFound(ControlSignal):
    """No pending review item with that id."""

    user_message = "That review item does not exist or was already decided."


class FactNotFound(ControlSignal):
    """No fact with that id exists for this user: another user's fact ids look exactly
    like ids that never existed."""

    user_message = "That fact does not exist."


class BudgetExceeded(ControlSignal):
    """A daily spend cap (``scope``: ``user:<id>`` or ``global``) refused a paid call
    before it reached the provider. Not an outage: a free provider later in the chain
    may still answer (fallback kind ``budget``)."""

    user_message = ("The assistant has reached its spending limit for today. "
                    "Your message is saved; please try again tomorrow.")

    def __init__(self, message: str, *, provider: str = "", scope: str = "") -> None:
        super().__init__(message)
        self.provider, self.scope = provider, scope


#: Names for ``LASTMILE_FALLBACK_ON``: which failures move on to the next provider.
FALLBACK_KINDS: dict[str, type[LastmileError]] = {
    "unavailable": ProviderUnavailable,
    "rate_limited": RateLimited,
    "interrupted": StreamInterrupted,
    "bad_request": BadProviderRequest,
    "auth": AuthenticationFailed,
    "budget": BudgetExceeded,
    "pii": EgressBlocked,
}
