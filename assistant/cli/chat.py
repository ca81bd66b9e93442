"""``lastmile chat``: a conversation in the terminal, with a few slash commands.

The terminal shows the conversation and nothing else: log lines (and whatever native
code prints, such as llama.cpp) go to ``<data_dir>/chat.log`` (``assistant.cli.logs``).
A line starting with ``/`` is a command, never sent to the model (``//`` sends a
message that starts with ``/``). Ctrl-C stops a reply (what was written is kept);
Ctrl-D or ``/quit`` leaves.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from assistant.cli.common import load_settings
from assistant.cli.logs import setup_logging, stderr_to
from assistant.errors import InputRejected, LastmileError

__all__ = ["COMMANDS", "ChatLoop", "cmd_chat"]

#: Each command and what it does, as ``/help`` lists them.
COMMANDS = {
    "/help": "this list",
    "/new": "start a new conversation",
    "/sessions [n]": "list your conversations; with a number, continue that one",
    "/facts": "what lastmile remembers about you",
    "/forget <id or words>": "forget a fact, by its id or by what it is about",
    "/quit": "leave (Ctrl-D too)",
}


def _new_session() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class ChatLoop:
    """One terminal conversation: reads lines, runs commands, streams replies."""

    bot: Any
    user: str
    session: str
    out: Console
    listed: list[str] = field(default_factory=list)  # session ids as /sessions numbered them

    def handlers(self) -> dict[str, Callable[[str], bool]]:
        return {"/help": self.help, "/new": self.new, "/sessions": self.sessions,
                "/facts": self.facts, "/forget": self.forget, "/quit": lambda _: False,
                "/exit": lambda _: False}

    def handle(self, line: str) -> bool:
        """Run one input line; False to leave."""
        text = line.strip()  # an empty line gets the guards' friendly refusal
        if text.startswith("/") and not text.startswith("//"):
            name, _, rest = text.partition(" ")
            handler = self.handlers().get(name.lower())
            if handler is None:
                self.out.print(f"[yellow]unknown command {escape(name)}; /help lists them[/]")
                return True
            try:
                return handler(rest.strip())
            except LastmileError as exc:
                self.out.print(f"[yellow]{escape(exc.user_message)}[/]")
                return True
        self.reply(text[1:] if text.startswith("//") else text)
        return True

    def help(self, _: str) -> bool:
        width = max(len(c) for c in COMMANDS)
        for command, what in COMMANDS.items():
            self.out.print(f"  [bold]{escape(command.ljust(width))}[/]  {what}")
        self.out.print("  anything else is sent to the assistant (start with // to send a /)")
        return True

    def new(self, _: str) -> bool:
        self.session = _new_session()
        self.out.print(f"[dim]new conversation {self.session}[/]")
        return True

    def sessions(self, arg: str) -> bool:
        if arg:
            if not arg.isdigit() or not 1 <= int(arg) <= len(self.listed):
                self.out.print("[yellow]give a number from the last /sessions list[/]")
                return True
            self.session = self.listed[int(arg) - 1]
            self.out.print(f"[dim]continuing {self.session}[/]")
            return True
        found = self.bot.sessions.list(self.user)
        self.listed = [s.session_id for s in found]
        if not found:
            self.out.print("no conversations yet")
        for number, info in enumerate(found, 1):
            here = " (this one)" if info.session_id == self.session else ""
            self.out.print(f"  {number:>2}. {escape(info.title)} · {info.message_count} messages · "
                           f"{info.updated_at:%Y-%m-%d %H:%M}{here}", highlight=False)
        return True

    def facts(self, _: str) -> bool:
        known = self.bot.facts.list(self.user)
        if not known:
            self.out.print("no facts remembered yet")
        for fact in known:
            self.out.print(f"  [{fact.id}] {escape(fact.text)}", highlight=False)
        return True

    def forget(self, arg: str) -> bool:
        if not arg:
            self.out.print("[yellow]say which: /forget 12, or /forget where I live[/]")
            return True
        result = self.bot.facts.forget(self.user, arg)
        self.out.print(escape(getattr(result, "message", "") or "Forgotten."), highlight=False)
        return True

    def reply(self, text: str) -> None:
        try:
            stream = self.bot.stream(text, session_id=self.session, user_id=self.user)
        except InputRejected as exc:
            self.out.print(f"[yellow]{escape(exc.user_message)}[/]")
            return
        self.out.print("[bold]bot>[/] ", end="")
        chunks = iter(stream)
        try:
            for chunk in chunks:
                self.out.print(chunk, end="", markup=False, highlight=False)
        except KeyboardInterrupt:
            chunks.close()  # ends the turn; what was written is stored, marked incomplete
            self.out.print("\n[dim](stopped)[/]")
            return
        self.out.print()
        reply = stream.reply
        if reply is not None and not reply.ok:
            self.out.print(f"[red]{escape(reply.error or 'no reply')}[/]")
        elif reply is not None and reply.notice:
            self.out.print(f"[dim]{escape(reply.notice)}[/]")


def cmd_chat(args: argparse.Namespace) -> int:
    settings = load_settings()
    log_file = settings.data_dir / "chat.log"
    setup_logging(settings.log_level, settings.log_level_libraries,
                  verbose=getattr(args, "verbose", False), to_file=log_file)
    out = Console(highlight=False, soft_wrap=True)  # the terminal wraps; copied text stays whole
    with stderr_to(log_file):
        from assistant.orchestrator import Assistant  # its imports log: only once logs go to the file

        bot = Assistant(settings)
        try:
            loop = ChatLoop(bot, args.user, args.session or _new_session(), out)
            out.print(f"[dim]session {loop.session} · model {escape(bot.model.label)} · /help for "
                      f"commands · log in {escape(str(log_file))}[/]")
            while True:
                try:
                    line = out.input("[bold]you>[/] ")
                except (EOFError, KeyboardInterrupt):
                    out.print()
                    break
                if not loop.handle(line):
                    break
        finally:
            bot.close()
    return 0
