"""Who is looking at the page, and what they may do.

Every UI handler resolves the viewer from the request on the server: a tab hidden in
the browser is a convenience, the check here is the rule. Without sign-in (auth=none)
there is one user, the operator, with ``single_user_role``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from memory.accounts import ROLES, Accounts

__all__ = ["Identity", "Viewer"]


@dataclass(frozen=True)
class Viewer:
    user_id: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class Identity:
    """Resolves ``gr.Request`` → ``Viewer`` for one app."""

    def __init__(self, settings: Any, accounts: Accounts | None, default_user: str | None = None) -> None:
        self.settings, self.accounts = settings, accounts
        self.default_user = default_user or settings.default_user

    def viewer(self, request: gr.Request | None) -> Viewer:
        name = getattr(request, "username", None) if request is not None else None
        if self.settings.auth == "none" or not name:
            return Viewer(self.default_user, self.settings.single_user_role)
        # The name was vouched for by ui.gate (a live session or a trusted proxy, which
        # also provisioned a newcomer); the role is read fresh so a change applies at once.
        account = self.accounts.get(name) if self.accounts is not None else None
        return Viewer(name, account.role if account is not None else "user")

    def require(self, request: gr.Request | None, role: str) -> Viewer:
        """The viewer, or a user-facing refusal when their role is too weak."""
        viewer = self.viewer(request)
        if not viewer.allows(role):
            raise gr.Error(f"This needs the {role} role.")
        return viewer
