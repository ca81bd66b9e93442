"""Raw Gradio calls for the attack tests: what a browser (or an attacker's script) sends
to ``/gradio_api/upload`` and ``/gradio_api/queue/join``, with a signed-in httpx client.

Events of the UI are ``api_visibility="private"``, so they are found in ``/config`` by
the component that triggers them (its ``elem_id``) rather than by an API name.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx

__all__ = ["call", "event_index", "file_data", "upload"]


def event_index(client: httpx.Client, elem_id: str, trigger: str) -> int:
    """The ``fn_index`` of the ``trigger`` event ("upload", "click", ...) of ``elem_id``."""
    config = client.get("/config").raise_for_status().json()
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert ids, f"no component with elem_id {elem_id!r}"
    for index, dep in enumerate(config["dependencies"]):
        if any(t[0] == ids[0] and t[1] == trigger for t in dep.get("targets", [])):
            return int(dep.get("id", index))
    raise AssertionError(f"no {trigger!r} event on #{elem_id}")


def _inputs(client: httpx.Client, fn_index: int) -> int:
    config = client.get("/config").raise_for_status().json()
    dep = next(d for i, d in enumerate(config["dependencies"]) if d.get("id", i) == fn_index)
    return len(dep["inputs"])


def call(client: httpx.Client, fn_index: int, data: list[Any] | None = None, *,
         event_data: Any = None) -> dict[str, Any]:
    """Join the queue for one event and read its stream to the end: the
    ``process_completed`` message (``success``, ``output.data`` or ``output.error``).
    ``data`` defaults to one ``None`` per input (state inputs are the server's)."""
    if data is None:
        data = [None] * _inputs(client, fn_index)
    session = secrets.token_hex(6)
    joined = client.post("/gradio_api/queue/join", json={
        "data": data, "fn_index": fn_index, "session_hash": session, "event_data": event_data})
    assert joined.status_code == 200, joined.text
    event_id = joined.json()["event_id"]
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session},
                       timeout=120) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                return message
            if message.get("msg") == "close_stream":
                break
    raise AssertionError(f"event {event_id} never completed")


def upload(client: httpx.Client, name: str, content: bytes) -> str:
    """Send a file through Gradio's real upload route; the server path it was kept at."""
    response = client.post("/gradio_api/upload", files=[("files", (name, content))])
    assert response.status_code == 200, response.text
    return str(response.json()[0])


def file_data(path: str, name: str | None = None) -> dict[str, Any]:
    """The ``FileData`` a client sends for a file (the path is whatever it claims)."""
    return {"path": path, "orig_name": name or path.rsplit("/", 1)[-1], "meta": {"_type": "gradio.FileData"}}
