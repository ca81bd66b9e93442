"""Who may sign in and with which role, and the API keys of the OpenAI-compatible endpoint.

Passwords are stored as scrypt hashes (stdlib ``hashlib.scrypt``, a memory-hard KDF:
no extra dependency and slow enough that a stolen table is not a password list). API
keys are random tokens shown once; only their SHA-256 is stored, which is enough
because a 256-bit random key cannot be guessed, and it keeps each lookup one indexed
query.

A sign-in answers in the same time whether or not the user exists (an unknown name is
checked against a dummy hash), so timing does not reveal which names have accounts.
Changing a password or a role, or disabling a user, revokes their sign-in sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from memory.db import rowcount
from memory.models import ApiKey, User, utcnow
from memory.signin import revoke_sessions

__all__ = ["ROLES", "Account", "Accounts", "hash_password", "valid_user_id", "verify_password"]

#: Roles in increasing order of power; a role may do everything the ones before it may.
ROLES = ("user", "reviewer", "admin")
KEY_PREFIX = "lm-"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
#: New user ids: no path tricks (``.``, ``..``, ``/``), no spaces or control characters.
USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def valid_user_id(user_id: str | None) -> bool:
    """Whether ``user_id`` may name a new account (e.g. one vouched for by a proxy)."""
    return bool(user_id and USER_ID.fullmatch(user_id) is not None and user_id not in (".", ".."))


@cache
def _dummy_hash() -> str:
    """What an unknown user's password is checked against, so both take one scrypt."""
    return hash_password(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; a malformed or missing hash never verifies."""
    try:
        scheme, salt, digest = (stored or "").split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), dklen=32, **_SCRYPT)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Account:
    user_id: str
    role: str
    display_name: str | None
    can_sign_in: bool
    disabled: bool = False

    def allows(self, role: str) -> bool:
        """True when this account's role is ``role`` or a stronger one."""
        return ROLES.index(self.role) >= ROLES.index(role)


class Accounts:
    """Users, roles, passwords and API keys in the SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def upsert(self, user_id: str, *, password: str | None = None, role: str | None = None,
               display_name: str | None = None) -> Account:
        """Create the user or change what is given; ``password=""`` is refused. A new
        password or role revokes the user's sign-in sessions."""
        if not user_id or not user_id.strip() or len(user_id) > 128:
            raise ValueError("a user id must be 1-128 characters")
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if password is not None and len(password) < 8:
            raise ValueError("a password must be at least 8 characters")
        with self._sessions.begin() as db:
            user = db.get(User, user_id)
            if user is None:
                if not valid_user_id(user_id):
                    raise ValueError("a new user id must be letters, digits and . _ @ - "
                                     "(starting with a letter or digit)")
                user = User(id=user_id, role=role or "user")
                db.add(user)
            elif (role is not None and role != user.role) or password is not None:
                revoke_sessions(db, user_id)
            if role is not None:
                user.role = role
            if password is not None:
                user.password_hash = hash_password(password)
            if display_name is not None:
                user.display_name = display_name
            db.flush()
            return _account(user)

    def get(self, user_id: str) -> Account | None:
        with Session(self._sessions.kw["bind"]) as db:
            user = db.get(User, user_id)
            return None if user is None else _account(user)

    def list(self) -> list[Account]:
        with Session(self._sessions.kw["bind"]) as db:
            return [_account(u) for u in db.scalars(select(User).order_by(User.id))]

    def authenticate(self, user_id: str, password: str) -> Account | None:
        """The account when the password matches, else None — the same answer, in the same
        time, for an unknown user, one without a password and a disabled one. Blocking
        (one scrypt): call it off the event loop."""
        with Session(self._sessions.kw["bind"]) as db:
            user = db.get(User, user_id) if len(user_id) <= 128 else None
            stored = user.password_hash if user is not None else None
            matched = verify_password(password, stored or _dummy_hash())
            if not matched or user is None or stored is None or user.disabled_at is not None:
                return None
            return _account(user)

    def set_disabled(self, user_id: str, disabled: bool) -> Account | None:
        """Disable (no sign-in, no API key, sessions revoked) or re-enable a user; None
        when there is no such user."""
        with self._sessions.begin() as db:
            user = db.get(User, user_id)
            if user is None:
                return None
            if disabled:
                user.disabled_at = user.disabled_at or utcnow()
                revoke_sessions(db, user_id)
            else:
                user.disabled_at = None
            db.flush()
            return _account(user)

    def any_password(self) -> bool:
        """Whether anyone can sign in with a password (else the UI runs single-user)."""
        with Session(self._sessions.kw["bind"]) as db:
            return db.scalar(select(User.id).where(User.password_hash.is_not(None)).limit(1)) is not None

    # API keys ------------------------------------------------------------------------
    def issue_key(self, user_id: str, name: str | None = None) -> str:
        """A new key for ``user_id``; the plaintext is returned once and never stored."""
        if self.get(user_id) is None:
            self.upsert(user_id)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._sessions.begin() as db:
            db.add(ApiKey(user_id=user_id, key_hash=_key_hash(key), prefix=key[:10], name=name))
        return key

    def user_for_key(self, key: str) -> Account | None:
        """The account a live key belongs to; revoked and unknown keys give None."""
        if not key.startswith(KEY_PREFIX):
            return None
        with self._sessions.begin() as db:
            row = db.scalar(select(ApiKey).where(ApiKey.key_hash == _key_hash(key),
                                                 ApiKey.revoked_at.is_(None)))
            if row is None:
                return None
            user = db.get(User, row.user_id)
            if user is None or user.disabled_at is not None:
                return None
            row.last_used_at = utcnow()
            return _account(user)

    def revoke_keys(self, user_id: str) -> int:
        with self._sessions.begin() as db:
            result = db.execute(update(ApiKey).where(ApiKey.user_id == user_id,
                                                     ApiKey.revoked_at.is_(None))
                                .values(revoked_at=utcnow()))
            return rowcount(result)


def _account(user: User) -> Account:
    return Account(user.id, user.role or "user", user.display_name, user.password_hash is not None,
                   user.disabled_at is not None)
