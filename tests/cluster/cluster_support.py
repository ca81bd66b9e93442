"""A real cluster for these tests: ``chroma run`` and two ``lastmile serve`` replicas
(A, B) as subprocesses on a scratch PostgreSQL schema, ``LASTMILE_PROVIDERS=scripted``
logging each replica's prompts to a JSONL file (what went into the prompt, observed
without putting it into the reply). Skips with the reason without PostgreSQL (fails
under ``LASTMILE_REQUIRE_POSTGRES=1``, like every PostgreSQL test)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from assistant.testing.cluster import Cluster, Proc

DELAY_S = 0.05  # per streamed piece: a turn takes ~0.5 s, so a burst has turns in flight


@dataclass
class Node:
    """A replica and the file its scripted model logs prompts to."""

    proc: Proc
    prompts: Path

    @property
    def url(self) -> str:
        assert self.proc.url is not None
        return self.proc.url

    def prompt_for(self, nonce: str) -> str:
        """The full prompt (all messages joined) of the request whose last message holds ``nonce``."""
        if not self.prompts.exists():
            return ""
        for line in reversed(self.prompts.read_text().splitlines()):
            messages = json.loads(line)["messages"]
            if messages and nonce in messages[-1]["content"]:
                return "\n".join(m["content"] for m in messages)
        return ""


class Env:
    """The running cluster: its nodes, the database URL, a way to add replicas."""

    def __init__(self, cluster: Cluster, url: str) -> None:
        self.cluster, self.url = cluster, url
        self.engine = create_engine(url)

    def replica(self, name: str, *, delay: float = DELAY_S, **env: str) -> Node:
        prompts = self.cluster.workdir / f"{name}.prompts.jsonl"
        proc = self.cluster.start_replica(name, env={
            "LASTMILE_PROVIDERS": f"scripted:log={prompts};delay={delay}", **env})
        return Node(proc, prompts)

    def api_key(self, user_id: str) -> str:
        from memory.accounts import Accounts

        accounts = Accounts(self.engine)
        accounts.upsert(user_id)
        return accounts.issue_key(user_id)

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(query), params))


class TcpProxy:
    """A loopback TCP forwarder to ``port`` that can be cut (every connection dropped,
    new ones refused) and restored: a database outage without stopping the server."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        import socket

        self.up = False
        with self._lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self.conns.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()
