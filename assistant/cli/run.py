"""``lastmile serve`` and ``lastmile chat`` (``assistant.cli.chat``): the two ways to run
the assistant itself.

``serve`` stops gracefully on SIGTERM / Ctrl-C: no new connections, in-flight turns
finish (up to ``LASTMILE_SHUTDOWN_GRACE_S``), then workers and models stop in the order
``assistant.cli.lifecycle`` keeps; exit code 0.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from assistant.cli.chat import cmd_chat
from assistant.cli.common import console, load_settings
from assistant.cli.lifecycle import StopSignal, stop_assistant

__all__ = ["cmd_chat", "cmd_serve", "register"]


def cmd_serve(args: argparse.Namespace) -> int:
    from assistant.audit import open_audit_log
    from assistant.cli.ingest import sample_corpus
    from assistant.errors import ModelFileNotFound
    from assistant.orchestrator import Assistant
    from ui.server import serve

    settings = load_settings()
    if args.user:
        settings = settings.model_copy(update={"default_user": args.user})
    host = args.host or settings.host
    port = args.port or settings.port

    open_audit_log(settings.data_dir / "audit.log")  # toasts' reference ids point here

    # Our handler notes SIGTERM/SIGINT; uvicorn re-raises them into it after its own
    # graceful stop, so the process is not killed before the workers and models stop.
    StopSignal().install()
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
    try:
        serve(bot, host=host, port=port, notice=notice, grace_s=settings.shutdown_grace_s)
    finally:
        stop_assistant(bot, grace_s=settings.shutdown_grace_s)
    console.print("lastmile: stopped")
    return 0


def register(sub: Any) -> None:
    """Add ``serve`` and ``chat`` to the ``lastmile`` parser."""
    serve = sub.add_parser("serve", help="serve the Gradio chat UI")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 7860)")
    serve.add_argument("--user", default=None,
                       help="user of the single-user setup (default LASTMILE_DEFAULT_USER)")
    serve.set_defaults(func=cmd_serve)
    chat = sub.add_parser("chat", help="chat in the terminal (/help lists its commands)")
    chat.add_argument("--session", default=None, help="session id to continue")
    chat.add_argument("--user", default="default", help="user id")
    chat.set_defaults(func=cmd_chat)
