"""Server-side UI sign-in sessions: the cookie carries a random token, the database keeps
only its SHA-256, the user, and when it expires or was revoked.

Kept in the database (not in process memory) so every replica agrees on who is signed
in, and so a password change, a role change or ``lastmile users disable`` ends every
session of that user at once — each request re-checks the row.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from memory.db import rowcount
from memory.models import SignInSession, User, utcnow

__all__ = ["SignInSessions", "revoke_sessions"]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def revoke_sessions(db: Session, user_id: str) -> int:
    """Revoke every live session of ``user_id`` inside the caller's transaction."""
    result = db.execute(update(SignInSession)
                        .where(SignInSession.user_id == user_id, SignInSession.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
    return rowcount(result)


class SignInSessions:
    """Create, resolve and revoke sign-in sessions."""

    def __init__(self, engine: Engine, ttl: timedelta) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a session lifetime must be positive")
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.ttl = ttl

    def create(self, user_id: str) -> str:
        """A new session for ``user_id``; the token is returned once and never stored."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self._sessions.begin() as db:
            db.add(SignInSession(token_hash=_token_hash(token), user_id=user_id, created_at=now,
                                 expires_at=now + self.ttl))
            # Housekeeping: expired rows of this user are of no further use.
            db.execute(delete(SignInSession).where(SignInSession.user_id == user_id,
                                                   SignInSession.expires_at < now - self.ttl))
        return token

    def resolve(self, token: str | None) -> tuple[str, str] | None:
        """``(user id, role)`` of a live session, or None (unknown, expired, revoked, disabled)."""
        if not token or len(token) > 128:
            return None
        with Session(self._sessions.kw["bind"]) as db:
            row = db.execute(select(SignInSession.expires_at, User.id, User.role)
                             .join(User, User.id == SignInSession.user_id)
                             .where(SignInSession.token_hash == _token_hash(token),
                                    SignInSession.revoked_at.is_(None),
                                    User.disabled_at.is_(None))).first()
        if row is None or _aware(row.expires_at) <= utcnow():
            return None
        return row.id, row.role or "user"

    def revoke(self, token: str | None) -> None:
        """Sign-out: this one session ends (others of the same user stay)."""
        if not token:
            return
        with self._sessions.begin() as db:
            db.execute(update(SignInSession)
                       .where(SignInSession.token_hash == _token_hash(token),
                              SignInSession.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))

    def revoke_user(self, user_id: str) -> int:
        with self._sessions.begin() as db:
            return revoke_sessions(db, user_id)
