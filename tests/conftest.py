"""Shared fixtures: no network but loopback, scratch databases on SQLite and PostgreSQL,
embedded and server Chroma.

PostgreSQL tests run against the server at 127.0.0.1:5432 (or
``LASTMILE_TEST_POSTGRES_URL``) in a scratch database created for this run and dropped
after it. Without a server they skip with the reason — unless
``LASTMILE_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where a missing server fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.testing import loopback_only

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Each test process its own Gradio upload cache: two xdist workers uploading the same
# bytes would otherwise share (and clean up) one content-hashed folder under /tmp/gradio.
# A worker always sets its own: it inherits the controller's value, and keeping that
# made every worker share one cache again (a test's discarded upload was another's).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER or "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = f"/tmp/gradio-{_WORKER or 'main'}-{os.getpid()}"
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

PG_ADMIN_URL = os.environ.get("LASTMILE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("LASTMILE_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session", autouse=True)
def _no_network() -> Iterator[None]:
    with loopback_only():
        yield


@pytest.fixture(autouse=True)
def _close_assistants(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Assistant a test builds is closed after it: its always-on job workers (issue
    12) would otherwise keep polling, and holding database connections, for the rest of
    the run. Assistants of module- or session-scoped fixtures are built before this runs."""
    from assistant.orchestrator import Assistant

    built: list[Any] = []
    original = Assistant.__init__

    def tracking_init(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Assistant, "__init__", tracking_init)
    yield
    for bot in reversed(built):
        with contextlib.suppress(Exception):  # a test may have closed or broken it on purpose
            bot.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's LASTMILE_* or provider keys, nor a stray .env."""
    for key in list(os.environ):
        if key.startswith("LASTMILE_") and key not in ("LASTMILE_REQUIRE_POSTGRES",
                                                       "LASTMILE_TEST_POSTGRES_URL"):
            monkeypatch.delenv(key)
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


def _pg_admin():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this test session, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    try:
        import psycopg  # noqa: F401
    except ImportError:
        if REQUIRE_PG:
            raise
        pytest.skip("psycopg is not installed (pip install 'lastmile-assistant[postgres]')")
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        if REQUIRE_PG:
            raise
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL} ({str(exc.orig).strip()[:80]}); "
                    "set LASTMILE_TEST_POSTGRES_URL to run these tests")
    name = f"lastmile_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite (a fresh file) and on PostgreSQL (fresh schema per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    from sqlalchemy import create_engine, text

    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server on loopback, for the HttpClient path."""
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if exe is None:
        pytest.fail("the `chroma` CLI (from chromadb) is not installed")
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = open(path / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([exe, "run", "--path", str(path / "data"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"chroma server exited: {(path / 'server.log').read_text()[-500:]}")
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma server did not start within 60 s")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    """Settings for a throwaway data dir on each database backend."""
    from assistant import Settings

    return Settings(data_dir=tmp_path / "data", database_url=database_url)


# --- the real server and a real browser ---------------------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
BROWSER_TIMEOUT_MS = 15_000

from ui_support import LiveServer  # noqa: E402 - a plain module: "conftest" is ambiguous under xdist


@pytest.fixture
def live_server() -> Iterator:
    """``start(bot, **create_server_kwargs) -> (url, stop)``; all stopped at teardown."""
    running: list[LiveServer] = []

    def start(bot, **kwargs):  # type: ignore[no-untyped-def]
        server = LiveServer(bot, **kwargs)
        running.append(server)
        return server.url, server.stop

    yield start
    for server in running:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (``playwright install`` cannot download here)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    executable = (os.environ.get("LASTMILE_TEST_CHROMIUM") or shutil.which("chromium")
                  or shutil.which("chromium-browser"))
    with sync_api.sync_playwright() as pw:
        try:
            launched = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                          headless=True)
        except sync_api.Error as exc:
            if os.environ.get("LASTMILE_REQUIRE_BROWSER") == "1":  # CI: never skip silently
                raise
            pytest.skip(f"no Chromium for Playwright ({str(exc).splitlines()[0]}); "
                        "apt-get install chromium")
        yield launched
        launched.close()


class Pages:
    """Browser tabs for one test; at the end, asserts none of them left loopback."""

    def __init__(self, browser) -> None:  # type: ignore[no-untyped-def]
        self.browser = browser
        self.contexts: list[object] = []
        self.urls: list[str] = []

    def new(self, **options):  # type: ignore[no-untyped-def]
        context = self.browser.new_context(viewport={"width": 1280, "height": 800}, **options)
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        context.on("request", lambda request: self.urls.append(request.url))
        self.contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self.contexts:
            context.close()  # type: ignore[attr-defined]
        assert self.urls or not self.contexts, "no requests seen: the listener is broken"
        local = ("http://127.0.0.1:", "data:", "blob:")
        outside = [u for u in self.urls if not u.startswith(local)]
        assert not outside, f"the page fetched from outside the machine: {outside[:5]}"


@pytest.fixture
def pages(browser) -> Iterator[Pages]:  # type: ignore[no-untyped-def]
    yield (tabs := Pages(browser))
    tabs.close()


@pytest.fixture
def page(pages: Pages):  # type: ignore[no-untyped-def]
    return pages.new()
