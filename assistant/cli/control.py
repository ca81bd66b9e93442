"""`lastmile admin kill-switch on|off|status`, `lastmile admin settings show|set|reset`
and `lastmile cache stats|clear`.

Both commands act on the database every server shares, so they work from any shell
while servers run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from assistant.cli.common import load_settings

__all__ = ["register"]


def _engine() -> Any:
    from memory.db import open_engine

    settings = load_settings()
    return settings, open_engine(settings.resolved_database_url)


def cmd_kill_switch(args: argparse.Namespace) -> int:
    from assistant.layers.killswitch import ControlFlags

    settings, engine = _engine()
    try:
        flags = ControlFlags.from_settings(settings, engine)
        if args.state != "status":
            flags.set_kill_switch(args.state == "on", by=args.by)
            flags = ControlFlags.from_settings(settings, engine)  # read back, uncached
        status = flags.status()
    finally:
        engine.dispose()
    out = Console(highlight=False)
    # "thrown by user 'default'", never "(by default)": the single user's name is "default".
    who = f"thrown by user {status['updated_by']!r}" if status["updated_by"] else "thrown"
    when = f" at {status['updated_at']:%Y-%m-%d %H:%M} UTC" if status["updated_at"] else ""
    source = {"setting": "forced on by LASTMILE_KILL_SWITCH",
              "database": f"{who}{when}, in the database every process reads"}.get(
        status["source"], "never thrown")
    if status["kill_switch"]:
        out.print(f"[red]kill switch ON[/]: remote model calls are refused; turns answer in safe mode"
                  f" ({escape(source)})")
    else:
        out.print("kill switch off: remote models are called normally")
    if status["source"] == "setting" and args.state == "off":
        out.print("[yellow]LASTMILE_KILL_SWITCH=1 still forces it on in processes that set it[/]")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """The Settings tab's overrides from a shell: show, set one, or back to the environment."""
    from memory.runtime_settings import TUNABLE, RuntimeSettings

    settings, engine = _engine()
    out = Console(highlight=False)
    try:
        runtime = RuntimeSettings(engine, refresh_s=0)
        if args.action == "set":
            if not args.name or args.value is None:
                out.print(f"[yellow]say which and to what: admin settings set NAME VALUE "
                          f"(NAME one of {', '.join(TUNABLE)})[/]")
                return 2
            try:
                runtime.set({args.name: args.value}, by=args.by)
            except ValueError as exc:
                out.print(f"[red]{escape(str(exc))}[/]")
                return 2
        elif args.action == "reset":
            runtime.reset([args.name] if args.name else None, by=args.by)
        overrides = runtime.overrides()
    finally:
        engine.dispose()
    for name in TUNABLE:
        value = overrides.get(name, getattr(settings, name))
        origin = "set by an admin" if name in overrides else "environment"
        out.print(f"{name} = {escape(repr(value if not hasattr(value, 'as_posix') else str(value)))}"
                  f"  [dim]({origin})[/]")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from memory.response_cache import ResponseCache, cache_stats

    settings, engine = _engine()
    try:
        if args.action == "clear":
            chroma = None
            if settings.cache_mode == "semantic":
                from memory.vectors import open_chroma

                chroma = open_chroma(settings.chroma_path, settings.chroma_url)
            removed = ResponseCache(engine, ttl_s=settings.cache_ttl_s, chroma=chroma).purge(
                user_id=args.user, expired_only=args.expired)
            Console(highlight=False).print(f"removed {removed} cached replies")
            return 0
        stats = cache_stats(engine, user_id=args.user, since=args.since)
    finally:
        engine.dispose()
    if args.json:
        sys.stdout.write(json.dumps(stats) + "\n")
        return 0
    Console(highlight=False).print(
        f"reply cache ({settings.cache_mode}): {stats['lookups']} lookups, {stats['hits']} hits "
        f"({stats['exact_hits']} exact, {stats['semantic_hits']} semantic), {stats['misses']} misses, "
        f"{stats['bypassed']} bypassed; hit rate {stats['hit_rate']:.1%}; "
        f"{stats['saved_tokens']} tokens saved")
    return 0


def register(sub: Any) -> None:
    """Register ``admin`` and ``cache`` on the ``lastmile`` sub-command parser."""
    admin = sub.add_parser("admin", help="operator switches shared by every process")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    kill = admin_sub.add_parser("kill-switch", help="stop (on) or resume (off) all remote model calls")
    kill.add_argument("state", choices=["on", "off", "status"])
    kill.add_argument("--by", default=None, help="who is throwing it (kept with the flag)")
    kill.set_defaults(func=cmd_kill_switch)
    tune = admin_sub.add_parser("settings", help="the Settings tab's overrides for every process: "
                                                 "show, set NAME VALUE, reset [NAME]")
    tune.add_argument("action", choices=["show", "set", "reset"])
    tune.add_argument("name", nargs="?", default=None)
    tune.add_argument("value", nargs="?", default=None)
    tune.add_argument("--by", default=None, help="who changes it (kept with the value)")
    tune.set_defaults(func=cmd_settings)
    cache = sub.add_parser("cache", help="reply cache hit rates, or clear it")
    cache.add_argument("action", choices=["stats", "clear"])
    cache.add_argument("--user", default=None, help="only this user")
    cache.add_argument("--since", default=None, help="stats from this UTC day, YYYY-MM-DD")
    cache.add_argument("--expired", action="store_true", help="clear: only expired entries")
    cache.add_argument("--json", action="store_true", help="stats: print JSON")
    cache.set_defaults(func=cmd_cache)
