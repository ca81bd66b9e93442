"""The one door into the UI: every request except ``/login``, ``/logout`` and ``/v1``
(which checks API keys itself) must carry a live sign-in, or it is refused before Gradio
sees it — Gradio guards only some of its routes (``/heartbeat``, ``/stream``, ``/cancel``
have no login check), so the default here is deny.

Who the viewer is depends on ``LASTMILE_AUTH``:

* ``password`` — the session cookie, looked up in the database on every request (so a
  revoked session or a disabled user is out at once, on every replica);
* ``header`` — the user header, believed only from a trusted proxy: a TCP peer inside
  ``LASTMILE_AUTH_TRUSTED_PROXIES`` and/or the shared secret header;
* ``none`` — the single operator.

``/monitoring*`` (Gradio's dashboard of every user's request counts) is refused to
anyone but an admin.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from memory.accounts import Accounts, valid_user_id
from memory.signin import SignInSessions

__all__ = ["COOKIE", "AuthGate", "ProxyTrust", "SignedIn", "signed_in", "signed_in_user", "viewer_id"]

#: The sign-in cookie (HttpOnly, SameSite=Lax); its value is the session token.
COOKIE = "lastmile_session"
_STATE = "lastmile_viewer"
_OPEN = {"/login", "/logout", "/openapi.json", "/healthz", "/readyz", "/metrics"}  # and /v1/…


@dataclass(frozen=True)
class SignedIn:
    user_id: str
    role: str


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


class ProxyTrust:
    """Which requests a reverse proxy vouches for, and the client address behind it."""

    def __init__(self, settings: Any) -> None:
        self.networks = [ipaddress.ip_network(part.strip(), strict=False)
                         for part in settings.auth_trusted_proxies.split(",") if part.strip()]
        secret = settings.auth_proxy_secret.get_secret_value() if settings.auth_proxy_secret else ""
        self.secret = secret.encode() if secret else None
        self.secret_header = settings.auth_proxy_secret_header

    @property
    def configured(self) -> bool:
        return bool(self.networks) or self.secret is not None

    def _trusted_ip(self, text: str) -> bool:
        ip = _ip(text)
        return ip is not None and any(ip in net for net in self.networks)

    def vouches(self, request: HTTPConnection) -> bool:
        """True when every configured check passes: the peer's network, the secret."""
        if not self.configured:
            return False
        peer = request.client.host if request.client else ""
        if self.networks and not self._trusted_ip(peer):
            return False
        if self.secret is not None:
            given = request.headers.get(self.secret_header, "").encode("latin-1", "replace")
            return hmac.compare_digest(given, self.secret)
        return True

    def client_address(self, request: HTTPConnection) -> str:
        """The TCP peer, or — when the peer is a trusted proxy — the nearest hop in
        ``X-Forwarded-For`` that is not one (what the login rate limit counts)."""
        peer = request.client.host if request.client else "unknown"
        if self.networks and self._trusted_ip(peer):
            hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
            for hop in reversed([h for h in hops if h]):
                if not self._trusted_ip(hop):
                    return hop if _ip(hop) is not None else peer
        return peer


class Resolver:
    """Request → ``SignedIn`` (or None) for the configured auth mode. Blocking (database)."""

    def __init__(self, settings: Any, accounts: Accounts | None,
                 sessions: SignInSessions | None) -> None:
        self.settings, self.accounts, self.sessions = settings, accounts, sessions
        self.trust = ProxyTrust(settings)

    def __call__(self, request: HTTPConnection) -> SignedIn | None:
        mode = self.settings.auth
        if mode == "password":
            found = self.sessions.resolve(request.cookies.get(COOKIE)) if self.sessions else None
            return SignedIn(*found) if found else None
        if mode == "header":
            return self._from_proxy(request)
        return SignedIn(self.settings.default_user, self.settings.single_user_role)

    def _from_proxy(self, request: HTTPConnection) -> SignedIn | None:
        if not self.trust.vouches(request):
            return None
        name = request.headers.get(self.settings.auth_header, "").strip()
        if self.accounts is None:
            return SignedIn(name, "user") if valid_user_id(name) else None
        account = self.accounts.get(name) if name and len(name) <= 128 else None
        if account is None:
            if not valid_user_id(name):
                return None
            try:
                account = self.accounts.upsert(name)  # a proxy-vouched newcomer
            except IntegrityError:  # a parallel request of theirs made it first
                account = self.accounts.get(name)
                if account is None:
                    return None
        return None if account.disabled else SignedIn(account.user_id, account.role)


async def signed_in_user(request: Request) -> str | None:
    """Gradio's ``auth_dependency``: the user the gate already let in for this request."""
    viewer = request.scope.get("state", {}).get(_STATE)
    return viewer.user_id if isinstance(viewer, SignedIn) else None


def signed_in(scope: Scope) -> SignedIn | None:
    """Who the gate let in for this ASGI scope, with their role (None: auth=none)."""
    viewer = scope.get("state", {}).get(_STATE)
    return viewer if isinstance(viewer, SignedIn) else None


def viewer_id(scope: Scope) -> str | None:
    """The user the gate let in for this ASGI scope (None: no sign-in, or auth=none)."""
    viewer = scope.get("state", {}).get(_STATE)
    return viewer.user_id if isinstance(viewer, SignedIn) else None


def _is_open(path: str) -> bool:
    return path in _OPEN or path.startswith("/v1/")


class AuthGate:
    """ASGI middleware: resolve the viewer once per request, refuse the rest."""

    def __init__(self, app: ASGIApp, *, resolver: Callable[[HTTPConnection], SignedIn | None],
                 mode: str) -> None:
        self.app, self.resolver, self.mode = app, resolver, mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        monitoring = path == "/monitoring" or path.startswith("/monitoring/")
        if scope["type"] not in ("http", "websocket") or _is_open(path) \
                or (self.mode == "none" and not monitoring):  # the operator: nothing to look up
            await self.app(scope, receive, send)
            return
        request = HTTPConnection(scope)
        viewer = await to_thread.run_sync(self.resolver, request)
        refusal = self._refusal(request, viewer)
        if refusal is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE] = viewer
        await self.app(scope, receive, send)

    def _refusal(self, request: HTTPConnection, viewer: SignedIn | None) -> Response | None:
        path = request.scope.get("path", "")
        if viewer is None:
            if self.mode == "header":
                return JSONResponse({"detail": "Sign-in is by the reverse proxy, and this request "
                                               "did not come through it."}, status_code=403)
            if request.scope.get("method") == "GET" \
                    and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/login", status_code=303)
            return JSONResponse({"detail": "Not signed in."}, status_code=401)
        if (path == "/monitoring" or path.startswith("/monitoring/")) and viewer.role != "admin":
            return JSONResponse({"detail": "Monitoring is for admins."}, status_code=403)
        return None

