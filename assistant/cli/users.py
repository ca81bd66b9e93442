"""`lastmile users …`: accounts for sign-in and API keys for the OpenAI-compatible endpoint.

One command group of ``assistant.cli``; ``register`` adds it to the parser.
"""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from assistant.cli.common import load_settings

if TYPE_CHECKING:
    from memory.accounts import Accounts

__all__ = ["register"]


def _accounts() -> Accounts:
    from memory.accounts import Accounts
    from memory.db import open_engine

    return Accounts(open_engine(load_settings().resolved_database_url))


def cmd_add(args: argparse.Namespace) -> int:
    password = None
    if args.password:
        password = getpass.getpass(f"password for {args.user_id}: ")
    try:
        account = _accounts().upsert(args.user_id, password=password, role=args.role,
                                     display_name=args.name)
    except ValueError as exc:
        Console(stderr=True).print(f"[red]lastmile: {exc}[/]")
        return 2
    Console().print(f"{account.user_id}: role {account.role}, "
                    f"{'can' if account.can_sign_in else 'cannot'} sign in with a password"
                    + (" (a new password or role ends their sign-in sessions)" if password or args.role
                       else ""))
    return 0


def _set_disabled(user_id: str, disabled: bool) -> int:
    account = _accounts().set_disabled(user_id, disabled)
    if account is None:
        Console(stderr=True).print(f"[red]lastmile: no user {user_id!r}[/]")
        return 2
    Console().print(f"{user_id}: disabled (signed out; API keys refused)" if disabled
                    else f"{user_id}: enabled")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    return _set_disabled(args.user_id, True)


def cmd_enable(args: argparse.Namespace) -> int:
    return _set_disabled(args.user_id, False)


def cmd_key(args: argparse.Namespace) -> int:
    key = _accounts().issue_key(args.user_id, name=args.name)
    Console(stderr=True).print(f"API key for {args.user_id} (shown once; keep it secret):")
    print(key)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    count = _accounts().revoke_keys(args.user_id)
    Console().print(f"revoked {count} key(s) of {args.user_id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    table = Table("user", "role", "password sign-in", "name", "status")
    for account in _accounts().list():
        table.add_row(account.user_id, account.role, "yes" if account.can_sign_in else "no",
                      account.display_name or "", "disabled" if account.disabled else "active")
    Console().print(table)
    return 0


def register(sub: Any) -> None:
    """Add ``users`` and its verbs to the ``lastmile`` parser."""
    users = sub.add_parser("users", help="accounts, roles and API keys")
    verbs = users.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="create or update a user")
    add.add_argument("user_id")
    add.add_argument("--role", choices=["user", "reviewer", "admin"], default=None)
    add.add_argument("--name", default=None, help="display name")
    add.add_argument("--password", action="store_true", help="prompt for a sign-in password")
    add.set_defaults(func=cmd_add)
    key = verbs.add_parser("key", help="issue an API key for /v1/chat/completions")
    key.add_argument("user_id")
    key.add_argument("--name", default=None, help="a label for the key")
    key.set_defaults(func=cmd_key)
    revoke = verbs.add_parser("revoke", help="revoke every API key of a user")
    revoke.add_argument("user_id")
    revoke.set_defaults(func=cmd_revoke)
    for verb, func, what in (("disable", cmd_disable, "sign out a user and refuse their sign-in "
                                                      "and API keys"),
                             ("enable", cmd_enable, "let a disabled user back in")):
        parser = verbs.add_parser(verb, help=what)
        parser.add_argument("user_id")
        parser.set_defaults(func=func)
    verbs.add_parser("list", help="list users").set_defaults(func=cmd_list)
