"""Files attached to a chat message (the paperclip): checked, kept and ingested into
the user's own collection for that chat (``memory.chats.attached_collection``), so
other chats do not draw on them unless the person picks that collection.

The upload path is the Documents tab's, checks included (``ui.documents_tab``): only a
file Gradio's ``/upload`` route wrote in this process is read (``received_upload``: the
forged-path fix), then type and size (``check_upload``). A file that cannot be used —
too big, unsupported, encrypted, empty — gets one friendly line naming the limit, and
the message itself is still sent without it.

A file over the size limit never reaches the server: the page keeps it out of the box
(``ui.upload_limit``) and the send event passes on what it kept back (``refused``), so
it gets the same line in the chat as any other refused file.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.orchestrator import Assistant
from memory.chats import attached_collection
from ui.documents_tab import _refuse, check_upload, discard_upload, received_upload, upload_folder

__all__ = ["Attached", "attach_files", "chat_folder", "max_file_bytes"]


@dataclass
class Attached:
    """What became of a message's files: ``added`` names, and a line per refusal."""

    added: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def note(self) -> str:
        """The chat notice: what was attached, and why any file was not."""
        lines = [f"📎 Attached to this chat: {', '.join(self.added)}"] if self.added else []
        lines += [f"⚠ Not attached — {why} The message was sent without it." for why in self.refused]
        return "\n\n".join(lines)


def chat_folder(data_dir: Path, user_id: str, session_id: str) -> Path:
    """``<the user's upload folder>/chats/<sha256(session id)[:16]>``: one folder per chat,
    inside the user's, whatever characters the session id holds."""
    return upload_folder(data_dir, user_id) / "chats" / hashlib.sha256(
        session_id.encode("utf-8")).hexdigest()[:16]


def _kept(data_dir: Path, user_id: str, session_id: str, upload: Path) -> Path:
    """A stable copy under the user's upload folder, one sub-folder per chat (a file of
    the same name in another chat or in the Documents tab stays a separate source)."""
    folder = chat_folder(data_dir, user_id, session_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / upload.name
    shutil.copyfile(upload, target)
    return target


def _named(files: Iterable[Any]) -> list[str]:
    return list(dict.fromkeys(str(f.get("path") if isinstance(f, dict) else getattr(f, "path", f))
                              for f in files))


def max_file_bytes(bot: Assistant) -> int:
    return int(getattr(bot.settings, "ingest_max_file_mb", 20) * 1_000_000)


def attach_files(bot: Assistant, user_id: str, session_id: str, files: Iterable[Any],
                 refused: Sequence[str] = ()) -> Attached:
    """Check and ingest ``files`` (paths as Gradio passed them) for this chat;
    ``refused``: lines for files the page already kept back (``ui.upload_limit.kept_back``)."""
    max_bytes = max_file_bytes(bot)
    result = Attached(refused=list(refused))
    for name in _named(files):
        path = received_upload(name)
        if path is None:
            result.refused.append(_refuse(user_id, name) + ".")
            continue
        why = check_upload(path, max_bytes)
        if why is None and path.stat().st_size == 0:
            why = f"{path.name} is empty (0 bytes): there is nothing to read."
        if why is None and bot.documents is None:
            why = f"{path.name}: documents are off in this deployment."
        if why is not None:
            discard_upload(path)
            result.refused.append(why if why.endswith(".") else why + ".")
            continue
        kept = _kept(Path(bot.settings.data_dir), user_id, session_id, path)
        discard_upload(path)
        corpus: Any = bot.documents
        report = corpus.ingest([kept], collection=attached_collection(session_id), user_id=user_id)
        problems = [f for f in report.files if f.status in ("skipped", "rejected", "missing")]
        if problems:  # e.g. an encrypted PDF: say why, without the server's path
            kept.unlink(missing_ok=True)
            detail = problems[0].detail.replace(str(kept), kept.name) or "it could not be read"
            result.refused.append(detail if detail.startswith(kept.name) else f"{kept.name}: {detail}")
        else:
            result.added.append(kept.name)
    chosen = bot.chats.scope(session_id, user_id=user_id) if result.added else None
    if chosen is not None and attached_collection(session_id) not in chosen:
        # The person picked this chat's collections: its own files join the pick.
        bot.chats.set_scope(session_id, [*chosen, attached_collection(session_id)], user_id=user_id)
    return result
