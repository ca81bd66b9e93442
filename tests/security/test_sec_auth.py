"""Sign-in that cannot be spoofed, flooded or outlived (issue 10, findings 2, 5, 6, 10a),
replayed against the real server: header spoofing, login flooding, user-name timing,
cookies that outlive a password change, a disable or their lifetime, and a plain user
reading ``/monitoring``."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import openai
import pytest
from pydantic import SecretStr, ValidationError

from assistant import Assistant, Settings
from assistant.errors import ConfigurationError

if TYPE_CHECKING:
    from conftest import Rig  # tests/security/conftest.py (the rig)

HTML = {"accept": "text/html"}
#: Gradio routes a signed-in browser uses (config, API info, a queue poll, a heartbeat).
GRADIO_API = ["/config", "/gradio_api/info", "/gradio_api/heartbeat/abc123"]


def signed_in(client: httpx.Client) -> bool:
    """Whether the client's cookie still opens the UI (Gradio's own config route)."""
    response = client.get("/config")
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def wrong_login(client: httpx.Client, user: str = "alice") -> httpx.Response:
    return client.post("/login", data={"username": user, "password": "not-the-password"})


# --- sessions: login page, refusal, revocation, expiry --------------------------------

def test_unsigned_requests_are_sent_to_the_login_page_or_refused(rig: Rig) -> None:
    client = rig.client()
    page = client.get("/", headers=HTML)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    for path in GRADIO_API:
        assert client.get(path).status_code == 401, path
    joined = client.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0,
                                                         "session_hash": "x"})
    assert joined.status_code == 401
    client.cookies.set("lastmile_session", "forged-token")
    assert not signed_in(client)


def test_login_page_is_plain_html_and_a_wrong_password_is_a_friendly_message(rig: Rig) -> None:
    client = rig.client()
    page = client.get("/login")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text
    wrong = wrong_login(client)
    assert wrong.status_code == 401 and "Incorrect username or password" in wrong.text
    assert "Traceback" not in wrong.text and "set-cookie" not in wrong.headers
    empty = client.post("/login", data={"username": "alice"})
    assert empty.status_code == 400 and "Enter your username and password" in empty.text
    garbage = client.post("/login", content=b"\xff\x00--", headers={
        "content-type": "multipart/form-data; boundary=zzz"})
    assert 400 <= garbage.status_code < 500


def test_sign_in_sets_a_strict_cookie_and_opens_the_ui(rig: Rig) -> None:
    client = rig.client()
    response = client.post("/login", data={"username": "alice", "password": rig.password("alice")})
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=" in cookie
    assert signed_in(client)
    assert client.get("/", headers=HTML).status_code == 200
    # Only a hash of the token is stored.
    token = client.cookies["lastmile_session"]
    from sqlalchemy import text

    with rig.bot.store.engine.connect() as conn:  # type: ignore[attr-defined]
        stored = [r[0] for r in conn.execute(text("SELECT token_hash FROM auth_sessions"))]
    assert stored and token not in stored


def test_a_cookie_is_refused_after_a_password_or_role_change(rig: Rig) -> None:
    alice, adam = rig.sign_in("alice"), rig.sign_in("adam")
    bob = rig.sign_in("bob")
    assert signed_in(alice) and signed_in(adam) and signed_in(bob)
    rig.accounts.upsert("alice", password="a-brand-new-password")
    rig.accounts.upsert("adam", role="user")
    assert not signed_in(alice) and not signed_in(adam)
    assert signed_in(bob)  # nobody else is signed out
    assert rig.sign_in("alice", "a-brand-new-password") is not None


def test_logout_ends_the_session_for_good(rig: Rig) -> None:
    alice = rig.sign_in("alice")
    token = alice.cookies["lastmile_session"]
    assert alice.get("/logout").status_code == 303
    replay = rig.client()
    replay.cookies.set("lastmile_session", token)
    assert not signed_in(replay)


def test_a_session_expires(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(session_ttl_hours=1.5 / 3600)
    alice = rig.sign_in("alice")
    assert signed_in(alice)
    time.sleep(2.0)
    assert not signed_in(alice)


def test_disable_signs_out_and_refuses_keys_until_enabled(rig: Rig, monkeypatch) -> None:
    from assistant.cli import main

    bob = rig.sign_in("bob")
    assert signed_in(bob)
    assert rig.api("bob").models.list().data
    monkeypatch.setenv("LASTMILE_DATABASE_URL", rig.settings.resolved_database_url)
    monkeypatch.setenv("LASTMILE_DATA_DIR", str(rig.settings.data_dir))
    assert main(["users", "disable", "bob"]) == 0
    assert not signed_in(bob)
    with pytest.raises(openai.AuthenticationError):
        rig.api("bob").models.list()
    assert wrong_login(rig.client(), "bob").status_code == 401
    refused = rig.client().post("/login", data={"username": "bob", "password": rig.password("bob")})
    assert refused.status_code == 401
    assert main(["users", "disable", "nobody"]) == 2
    assert main(["users", "enable", "bob"]) == 0
    assert signed_in(rig.sign_in("bob")) and rig.api("bob").models.list().data


# --- login flooding and user-name timing ----------------------------------------------

def test_wrong_passwords_are_rate_limited_per_address_and_account(rig: Rig) -> None:
    client = rig.client()
    limit = rig.settings.login_max_failures
    assert [wrong_login(client).status_code for _ in range(limit)] == [401] * limit
    blocked = wrong_login(client)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert "Too many sign-in attempts" in blocked.text
    # The right password is no way round the back-off, nor is another account from here.
    right = client.post("/login", data={"username": "alice", "password": rig.password("alice")})
    assert right.status_code == 429
    assert wrong_login(client, "bob").status_code == 429
    wait = int(blocked.headers["retry-after"])
    time.sleep(wait + 0.2)
    again = wrong_login(client)  # one more try is allowed, then the wait doubles
    assert again.status_code == 401
    doubled = wrong_login(client)
    assert doubled.status_code == 429 and int(doubled.headers["retry-after"]) >= 2 * wait - 1


def _median_models_ms(rig: Rig, seconds: float, key: str) -> tuple[float, int]:
    client = rig.client(headers={"authorization": f"Bearer {key}"})
    times = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        assert client.get("/v1/models").status_code == 200
        times.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
    return statistics.median(times), len(times)


def test_a_login_flood_does_not_stall_the_api(make_rig: Callable[..., Rig]) -> None:
    # No back-off here: every one of the flood's tries costs a full scrypt (the worst case).
    rig = make_rig(login_max_failures=10**6)
    key = rig.keys["alice"]
    _median_models_ms(rig, 0.5, key)  # warm up
    idle, _ = _median_models_ms(rig, 2.0, key)
    stop, tries = threading.Event(), []

    def flood() -> None:
        client = rig.client()
        while not stop.is_set():
            tries.append(wrong_login(client).status_code)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        loaded, samples = _median_models_ms(rig, 3.0, key)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert tries.count(401) >= 10, "the flood did not run scrypt"
    assert samples >= 20
    assert loaded <= 3 * max(idle, 1.0), f"/v1/models median {loaded:.1f} ms vs idle {idle:.1f} ms"


def _login_ms(client: httpx.Client, user: str) -> float:
    start = time.perf_counter()
    assert wrong_login(client, user).status_code == 401
    return (time.perf_counter() - start) * 1000


def test_known_and_unknown_users_take_the_same_time(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(login_max_failures=10**6)  # no 429s to distort the timing
    client = rig.client()
    for user in ("alice", "nobody-here"):
        _login_ms(client, user)  # warm up both paths (the dummy hash is made lazily)
    rounds = []
    for _round in range(3):  # the box is shared: a burst of load may spoil one round
        known, unknown = [], []
        for i in range(11):  # interleaved, so load on the box hits both alike
            known.append(_login_ms(client, "alice"))
            unknown.append(_login_ms(client, f"nobody-{i}"))
        k, u = statistics.median(known), statistics.median(unknown)
        rounds.append(f"known {k:.1f} ms vs unknown {u:.1f} ms")
        if abs(k - u) <= 0.2 * max(k, u):
            break
    else:
        pytest.fail("; ".join(rounds))


# --- header auth -------------------------------------------------------------------

def test_header_auth_without_a_trust_anchor_does_not_start(rig_settings: Settings) -> None:
    with pytest.raises(ValidationError, match="LASTMILE_AUTH_TRUSTED_PROXIES"):
        Settings(**{**rig_settings.model_dump(), "auth": "header"})
    with pytest.raises(ValidationError, match="LASTMILE_AUTH_TRUSTED_PROXIES"):
        Settings(auth="header", auth_trusted_proxies="not-a-network")
    from ui.server import create_server

    unchecked = rig_settings.model_copy(update={"auth": "header"})  # copies skip validation
    with Assistant(unchecked) as bot, pytest.raises(ConfigurationError,
                                                    match="LASTMILE_AUTH_PROXY_SECRET"):
        create_server(bot)


def test_a_spoofed_user_header_from_an_untrusted_address_is_refused(
        make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auth="header", auth_trusted_proxies="10.0.0.0/8, 192.168.1.7")
    client = rig.client(headers={"X-Forwarded-User": "adam"})
    for path in ["/", *GRADIO_API, "/monitoring/summary"]:
        assert client.get(path, headers=HTML).status_code == 403, path
    root = rig.client(headers={"X-Forwarded-User": "root"})
    assert root.get("/config").status_code == 403
    assert rig.accounts.get("root") is None  # nor was the name made an account


def test_the_proxy_secret_vouches_and_bad_names_are_refused(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auth="header", auth_proxy_secret=SecretStr("proxy-secret-1234"))
    header = rig.settings.auth_proxy_secret_header

    def as_user(name: str, secret: str | None = "proxy-secret-1234") -> int:
        headers = {"X-Forwarded-User": name.encode(), **({header: secret} if secret is not None else {})}
        return rig.client(headers=headers).get("/config").status_code

    assert as_user("adam", None) == 403
    assert as_user("adam", "proxy-secret-123") == 403
    assert as_user("adam") == 200
    for bad in ("..", ".", "a/b", "a b", "x" * 200, "-dash", "ünï"):
        assert as_user(bad) == 403, bad
        assert rig.accounts.get(bad) is None
    assert as_user("carol@example.org") == 200  # a proxy-vouched newcomer
    assert rig.accounts.get("carol@example.org").role == "user"
    rig.accounts.set_disabled("carol@example.org", True)
    assert as_user("carol@example.org") == 403


@contextlib.contextmanager
def served_like_lastmile_serve(bot: Assistant) -> Iterator[httpx.Client]:
    """The app under ``serve()``'s uvicorn options (the rig's live server keeps uvicorn's
    defaults, which rewrite the client address from ``X-Forwarded-For``)."""
    import uvicorn

    from ui.server import create_server, uvicorn_options

    config = uvicorn.Config(create_server(bot), host="127.0.0.1", port=0, **uvicorn_options())
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def test_forwarded_for_cannot_fake_a_trusted_proxy(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auth="header", auth_trusted_proxies="10.0.0.0/8")
    with served_like_lastmile_serve(rig.bot) as client:
        response = client.get("/config", headers={"X-Forwarded-For": "10.0.0.5",
                                                  "X-Forwarded-User": "adam"})
    assert response.status_code == 403


def _wrong_logins_from(client: httpx.Client, forwarded_for: str, count: int) -> list[int]:
    return [client.post("/login", headers={"X-Forwarded-For": forwarded_for},
                        data={"username": f"guess-{i}", "password": "not-the-password"}
                        ).status_code for i in range(count)]


def test_the_rate_limit_counts_clients_behind_a_trusted_proxy(
        make_rig: Callable[..., Rig]) -> None:
    limit = 3
    behind = make_rig(login_max_failures=limit, auth_trusted_proxies="127.0.0.1/32")
    with served_like_lastmile_serve(behind.bot) as proxy:
        assert _wrong_logins_from(proxy, "203.0.113.1", limit + 1) == [401] * limit + [429]
        assert _wrong_logins_from(proxy, "203.0.113.2", 1) == [401]  # another client
    direct = make_rig(login_max_failures=limit)  # no proxy trusted: the header is ignored
    with served_like_lastmile_serve(direct.bot) as client:
        assert _wrong_logins_from(client, "203.0.113.1", limit) == [401] * limit
        assert _wrong_logins_from(client, "203.0.113.9", 1) == [429]


# --- /monitoring -------------------------------------------------------------------

def test_monitoring_is_not_for_users(rig: Rig) -> None:
    bob = rig.sign_in("bob")
    assert signed_in(bob)  # bob made some traffic
    alice = rig.sign_in("alice")
    for path in ("/monitoring", "/monitoring/summary", "/monitoring/some-key",
                 "/monitoring/some-key/dashboard"):
        response = alice.get(path)
        assert response.status_code in (403, 404), path
        assert "bob" not in response.text and "functions" not in response.text
    assert rig.client().get("/monitoring/summary").status_code == 401
    adam = rig.sign_in("adam")  # the built-in dashboard is off altogether
    assert adam.get("/monitoring/summary").status_code in (403, 404)


def test_monitoring_without_sign_in_follows_the_single_user_role(
        make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auth="none", single_user_role="user")
    assert rig.client().get("/monitoring/summary").status_code == 403
    assert rig.client().get("/config").status_code == 200  # the rest of the UI is open


def test_the_back_off_doubles_is_forgotten_and_bounded() -> None:
    from ui.ratelimit import LoginLimiter

    now = [0.0]
    limiter = LoginLimiter(2, base=1.0, cap=8.0, max_keys=3, clock=lambda: now[0])
    limiter.failed("a")
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == 1.0
    waits = []
    for _ in range(5):
        now[0] += limiter.retry_after("a")
        limiter.failed("a")
        waits.append(limiter.retry_after("a"))
    assert waits == [2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped
    limiter.succeeded("b")
    assert limiter.retry_after("b", "a") == 8.0  # any blocked key blocks the try
    now[0] += 17.0  # 2 × cap without a failure: forgotten
    assert limiter.retry_after("a") == 0
    for key in "wxyz":
        limiter.failed(key)
    assert len(limiter._entries) == 3  # bounded memory under a flood of names


def test_a_newcomers_parallel_first_requests_all_get_in(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(auth="header", auth_trusted_proxies="127.0.0.1/32")
    codes: list[int] = []
    start = threading.Barrier(8)

    def first_visit() -> None:
        client = rig.client(headers={"X-Forwarded-User": "newcomer"})
        start.wait()
        codes.append(client.get("/config").status_code)

    threads = [threading.Thread(target=first_visit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert codes == [200] * 8
    assert rig.accounts.get("newcomer").role == "user"
