"""The `lastmile` command: a thin adapter over the library.

Start-up failures (database or Chroma unreachable, model missing) print one line
naming what failed and how to fix it, and exit non-zero — no tracebacks for
operators.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Sequence

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from assistant.errors import ConfigurationError, InputRejected, LastmileError
from assistant.settings import Settings, quiet_third_parties

__all__ = ["main"]

console = Console(stderr=True, soft_wrap=True, highlight=False)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "LASTMILE_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
        raise ConfigurationError(f"invalid {field}: {first['msg']}") from exc


def cmd_doctor(args: argparse.Namespace) -> int:
    from assistant.doctor import run_checks

    checks = run_checks(_settings())
    out = Console(soft_wrap=True, highlight=False)
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = "[green]ok  [/]" if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.name.ljust(width)}  {escape(check.detail)}")
        if check.hint:
            out.print(f"     {' ' * width}  [yellow]fix:[/] {escape(check.hint)}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from assistant.errors import ModelFileNotFound
    from assistant.orchestrator import Assistant
    from ui.server import serve

    settings = _settings()
    if args.user:
        settings = settings.model_copy(update={"default_user": args.user})
    host = args.host or settings.host
    port = args.port or settings.port
    from assistant.audit import open_audit_log
    from assistant.ingest_cli import sample_corpus

    open_audit_log(settings.data_dir / "audit.log")  # toasts' reference ids point here

    # The docs as a shared corpus (ingested in the background): cited answers at once.
    bot = Assistant(settings, documents=sample_corpus(settings, console, background=True))
    notice = None
    try:
        label = bot.model.label
    except ModelFileNotFound as exc:  # serve anyway: the page explains the fix
        label = "no model"
        notice = f"the assistant cannot answer yet — {exc}; then restart `lastmile serve`."
        console.print(f"[yellow]lastmile: {escape(str(exc))}[/]", highlight=False)
    console.print(f"lastmile: serving on http://{host}:{port} with {label} "
                  f"(OpenAI-compatible API at http://{host}:{port}/v1)")
    serve(bot, host=host, port=port, notice=notice)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from assistant.orchestrator import Assistant

    bot = Assistant(_settings())
    session = args.session or uuid.uuid4().hex[:12]
    out = Console()
    out.print(f"[dim]session {session} · model {bot.model.label} · Ctrl-D to quit[/]")
    while True:
        try:
            text = out.input("[bold]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            out.print()
            break
        try:
            stream = bot.stream(text, session_id=session, user_id=args.user)
        except InputRejected as exc:
            out.print(f"[yellow]{exc.user_message}[/]")
            continue
        out.print("[bold]bot>[/] ", end="")
        for chunk in stream:
            out.print(chunk, end="", markup=False, highlight=False)
        reply = stream.reply
        out.print()
        if reply is not None and not reply.ok:
            out.print(f"[red]{reply.error}[/]")
    bot.close()
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    import json

    from rich.table import Table

    from memory.db import open_engine
    from memory.ledger import Ledger

    group_by = args.by
    engine = open_engine(_settings().resolved_database_url)
    try:
        ledger = Ledger(engine)
        rows = ledger.usage_report(group_by, since=args.since, user_id=args.user)
        total = ledger.spend(args.user, args.since)
    finally:
        engine.dispose()
    if args.json:
        sys.stdout.write(json.dumps({"group_by": group_by, "since": args.since, "user": args.user,
                                     "rows": rows, "total_cost_usd": round(total, 9)}) + "\n")
        return 0
    table = Table(title=f"lastmile usage{' since ' + args.since if args.since else ''}")
    for name in [*group_by, "calls", "tokens in", "tokens out", "cost USD", "failed", "refused"]:
        table.add_column(name, justify="left" if name in group_by else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(str(row[g] if row[g] is not None else "-")) for g in group_by),
                      str(row["calls"]), str(row["prompt_tokens"]), str(row["completion_tokens"]),
                      f"{row['cost_usd']:.6f}", str(row["failures"]), str(row["refused"]))
    out = Console(highlight=False, width=max(Console().width, 140))  # a report, not a TUI
    out.print(table)
    out.print(f"total: ${total:.6f}")
    return 0


def _day(value: str) -> str:
    import datetime

    try:
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {value!r}") from None


def _groups(value: str) -> list[str]:
    from memory.ledger import GROUPS

    groups = [g.strip() for g in value.split(",") if g.strip()]
    if not groups or set(groups) - set(GROUPS):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(GROUPS)}, got {value!r}")
    return groups


def cmd_bench(args: argparse.Namespace) -> int:
    if args.suite == "locomo":
        from memory.locomo_bench import main as locomo

        return locomo(args.rest)
    if args.suite == "faults":
        from assistant.faultbench import main as faults

        return faults(args.rest)
    raise AssertionError(args.suite)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lastmile", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Gradio chat UI")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 7860)")
    serve.add_argument("--user", default=None,
                       help="user of the single-user setup (default LASTMILE_DEFAULT_USER)")
    serve.set_defaults(func=cmd_serve)
    chat = sub.add_parser("chat", help="chat in the terminal")
    chat.add_argument("--session", default=None, help="session id to continue")
    chat.add_argument("--user", default="default", help="user id")
    chat.set_defaults(func=cmd_chat)
    bench = sub.add_parser("bench", help="run a benchmark (see docs/benchmarks.md)")
    bench.add_argument("suite", choices=["locomo", "faults"],
                       help="locomo: memory retrieval recall@k; faults: the provider fault matrix")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="the suite's own options (--help)")
    bench.set_defaults(func=cmd_bench)
    doctor = sub.add_parser("doctor", help="check configuration, models and services")
    doctor.set_defaults(func=cmd_doctor)
    usage = sub.add_parser("usage", help="spend and tokens from the cost ledger")
    usage.add_argument("--by", type=_groups, default="user,day,purpose",
                       help="comma-separated groups: user, day, purpose, provider")
    usage.add_argument("--since", type=_day, default=None, help="first UTC day, YYYY-MM-DD")
    usage.add_argument("--user", default=None, help="only this user")
    usage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    usage.set_defaults(func=cmd_usage)
    from assistant.cli_users import register as users

    users(sub)
    from assistant.control_cli import add_commands as control_commands

    control_commands(sub)  # admin kill-switch, cache stats|clear
    from assistant.replay_cli import register as replay

    replay(sub)  # replay FILE: long-conversation report (tokens, latency, memory, recall)
    from assistant.ingest_cli import register as documents

    documents(sub)  # ingest PATH… --collection NAME; review list|approve|edit|reject
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_third_parties()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except LastmileError as exc:
        # One line, whatever failed: operators grep logs, and a second line gets lost.
        hint = " (run `lastmile doctor` for a full check)" if isinstance(exc, ConfigurationError) else ""
        console.print(f"[red]lastmile: {escape(str(exc))}[/]{hint}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
