"""Our own sign-in page (``LASTMILE_AUTH=password``): ``GET /login`` shows a plain
server-rendered form (no scripts, nothing fetched), ``POST /login`` checks the password
and starts a server-side session (``memory.signin``), ``/logout`` ends it.

Replaces Gradio's built-in ``auth=``, whose tokens live in one process's memory, never
expire and survive a password change. The password check (one scrypt, ~0.1 s of CPU)
runs in a worker thread with a small capacity of its own, so a flood of wrong passwords
neither stalls the event loop nor takes every core; past ``login_max_failures`` the
flood gets 429 before any hashing at all.
"""

from __future__ import annotations

import html
import math
import os
from datetime import timedelta
from typing import Any

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from memory.accounts import Accounts
from memory.signin import SignInSessions
from ui.gate import COOKIE, ProxyTrust
from ui.ratelimit import LoginLimiter

__all__ = ["login_router"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · lastmile</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f1f5f9;margin:0;display:flex;
min-height:100vh;align-items:center;justify-content:center;color:#0f172a}}
form{{background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0002;width:20rem}}
h1{{font-size:1.3rem;margin:0 0 1rem}} label{{display:block;margin:.8rem 0 .3rem}}
input{{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #cbd5e1;border-radius:6px}}
button{{margin-top:1.2rem;width:100%;padding:.6rem;border:0;border-radius:6px;background:#4f46e5;
color:#fff;font-size:1rem;cursor:pointer}}
.msg{{background:#fef2f2;color:#991b1b;padding:.6rem;border-radius:6px;margin-bottom:.5rem}}
</style></head><body>
<form method="post" action="/login">
<h1>Sign in to lastmile</h1>
{message}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required maxlength="128"
 value="{username}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required
 maxlength="1024">
<button type="submit">Login</button>
</form></body></html>
"""


def _page(message: str = "", username: str = "", status: int = 200,
          headers: dict[str, str] | None = None) -> HTMLResponse:
    shown = f'<p class="msg" role="alert">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(_PAGE.format(message=shown, username=html.escape(username, quote=True)),
                        status_code=status, headers=headers)


def login_router(settings: Any, accounts: Accounts, sessions: SignInSessions) -> APIRouter:
    """``/login`` and ``/logout``; ``router.limiter`` is the wrong-password back-off."""
    router = APIRouter()
    trust = ProxyTrust(settings)
    limiter = LoginLimiter(settings.login_max_failures)
    hashing = CapacityLimiter(max(1, (os.cpu_count() or 2) - 1))
    max_age = int(sessions.ttl / timedelta(seconds=1))
    router.limiter = limiter  # type: ignore[attr-defined]  # the back-off, exposed on the router

    def secure(request: Request) -> bool:
        forwarded = request.headers.get("x-forwarded-proto", "") if trust.vouches(request) else ""
        return request.url.scheme == "https" or forwarded.lower() == "https"

    @router.get("/login", include_in_schema=False)
    async def login_form() -> HTMLResponse:
        return _page()

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        try:
            form = await request.form(max_files=0, max_fields=10)
        except Exception:  # noqa: BLE001 - a malformed body is the client's mistake
            return _page("That sign-in form could not be read; please try again.", status=400)
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        if not username or not password:
            return _page("Enter your username and password.", username[:128], status=400)
        if len(username) > 128 or len(password) > 1024:
            return _page("Incorrect username or password.", status=401)
        keys = (f"addr:{trust.client_address(request)}", f"user:{username}")
        wait = limiter.retry_after(*keys)
        if wait > 0:
            seconds = math.ceil(wait)
            return _page(f"Too many sign-in attempts. Please wait {seconds} s and try again.",
                         username, status=429, headers={"Retry-After": str(seconds)})
        account = await to_thread.run_sync(accounts.authenticate, username, password,
                                           limiter=hashing)
        if account is None:
            limiter.failed(*keys)
            return _page("Incorrect username or password.", username, status=401)
        limiter.succeeded(keys[1])
        token = await to_thread.run_sync(sessions.create, account.user_id)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, max_age=max_age, httponly=True, samesite="lax",
                            secure=secure(request), path="/")
        return response

    @router.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
    async def logout(request: Request) -> Response:
        await to_thread.run_sync(sessions.revoke, request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
        return response

    return router
