"""The load generator of ``lastmile bench overhead``: OpenAI chat requests at a fixed
concurrency, timed end to end and to the first content token.

Why asyncio and raw HTTP (httpx) rather than the openai SDK in threads: on two cores the
client shares the CPU with the servers it measures, so it must cost as little as it can,
and it must cost the same for every target (the backend, LiteLLM, lastmile).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Run", "Target", "drive", "percentile"]


@dataclass(frozen=True)
class Target:
    """One OpenAI-compatible endpoint: ``base`` is its ``/v1`` URL."""

    name: str
    base: str
    model: str
    #: client index -> (bearer key, session id or None); lastmile keys name the user.
    identity: Callable[[int], tuple[str, str | None]] = lambda _i: ("sk-bench", None)


@dataclass
class Run:
    """What one (target, concurrency) pass measured; times in milliseconds."""

    target: str
    concurrency: int
    stream: bool
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else 0.0

    def p(self, q: float, ttft: bool = False) -> float:
        return percentile(self.ttfts if ttft else self.latencies, q)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN without values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, round(q * 1000) - 1)]


async def _one(client: httpx.AsyncClient, target: Target, index: int, text: str,
               stream: bool) -> tuple[float, float]:
    """One request; returns (total ms, first-content ms). Raises on any failure."""
    key, session = target.identity(index)
    body: dict[str, Any] = {"model": target.model, "stream": stream, "max_tokens": 64,
                            "messages": [{"role": "user", "content": text}]}
    if session is not None:
        body["metadata"] = {"session_id": session}
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    first: float | None = None
    if not stream:
        response = await client.post(f"{target.base}/chat/completions", json=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:160]}")
        content = response.json()["choices"][0]["message"]["content"]
        if not content:
            raise RuntimeError("empty reply")
        total = (time.perf_counter() - started) * 1000
        return total, total
    done = False
    async with client.stream("POST", f"{target.base}/chat/completions", json=body,
                             headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:160]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:].strip()
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(f"stream error: {str(chunk['error'])[:160]}")
            choices = chunk.get("choices") or []
            if first is None and choices and (choices[0].get("delta") or {}).get("content"):
                first = (time.perf_counter() - started) * 1000
    if not done or first is None:
        raise RuntimeError("stream ended without content or [DONE]")
    return (time.perf_counter() - started) * 1000, first


async def _drive(target: Target, concurrency: int, requests: int, stream: bool,
                 texts: Callable[[int], str], timeout: float) -> Run:
    run = Run(target.name, concurrency, stream)
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        async def worker(index: int) -> None:
            for n in counter:
                try:
                    total, ttft = await _one(client, target, index, texts(n), stream)
                except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
                    run.errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
                    continue
                run.latencies.append(total)
                run.ttfts.append(ttft)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        run.wall_s = time.perf_counter() - started
    return run


def drive(target: Target, *, concurrency: int, requests: int, stream: bool,
          texts: Callable[[int], str], timeout: float = 120.0) -> Run:
    """``requests`` requests to ``target``, ``concurrency`` at a time (client ``i`` of the
    pool always speaks as ``target.identity(i)``)."""
    return asyncio.run(_drive(target, concurrency, requests, stream, texts, timeout))
