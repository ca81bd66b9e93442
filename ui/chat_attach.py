"""Files attached to a chat message (the paperclip): checked, kept and ingested into
the user's own collection for that chat (``memory.chats.attached_collection``), so
other chats do not draw on them unless the person picks that collection.

The upload path is the Documents tab's, checks included (``ui.documents_tab``): only a
file Gradio's ``/upload`` route wrote in this process is read (``received_upload``: the
forged-path fix), then type and size (``check_upload``). A file that cannot be used —
too big, unsupported, encrypted, empty — gets one friendly line naming the limit, and
the message itself is still sent without it.

A file over the size limit never reaches the server: Gradio's page refuses it before
uploading (``max_file_size``) — with a toast, dropping the files picked with it too.
``ATTACH_HEAD`` keeps such a file out of the box first (paperclip or drop) and notes its
name and size in a hidden field the send event reads (``kept_back``), so it gets the
same line in the chat as any other refused file and the rest of the pick is attached.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.orchestrator import Assistant
from memory.chats import attached_collection
from ui.documents_tab import (
    _refuse,
    check_upload,
    discard_upload,
    received_upload,
    too_big,
    upload_folder,
)

__all__ = ["ATTACH_HEAD", "KEPT_BACK_ID", "Attached", "attach_files", "chat_folder", "kept_back",
           "max_file_bytes"]

#: The hidden field where the page notes the files it kept back as too big.
KEPT_BACK_ID = "lm-attach-refused"
_KEPT_BACK_MAX = 20  # entries read from that field (a page could claim any number)

#: Before Gradio sees a pick or a drop in the chat box, files over Gradio's own
#: ``max_file_size`` (the config it checks against) are taken out and noted as
#: ``[{"name", "size"}]`` in the hidden field; the others go on to Gradio as usual.
ATTACH_HEAD = """<script>
(() => {
  const FIELD = "#%s";
  const limit = () => Number((window.gradio_config || {}).max_file_size) || Infinity;
  const inBox = (el) => !!(el && el.closest && el.closest("#lm-input"));
  const note = (files) => {
    const field = document.querySelector(FIELD + " textarea, " + FIELD + " input");
    if (!field) return;
    let kept = [];
    try { kept = JSON.parse(field.value || "[]"); } catch (err) { kept = []; }
    if (!Array.isArray(kept)) kept = [];
    for (const f of files) kept.push({name: f.name, size: f.size});
    field.value = JSON.stringify(kept);
    field.dispatchEvent(new Event("input", {bubbles: true}));
  };
  const split = (list) => {
    const ok = new DataTransfer(), big = [];
    for (const f of Array.from(list || [])) {
      if (f.size > limit()) big.push(f); else ok.items.add(f);
    }
    return [ok, big];
  };
  document.addEventListener("change", (e) => {
    const input = e.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file" || !inBox(input)) return;
    const [ok, big] = split(input.files);
    if (!big.length) return;
    note(big);
    input.files = ok.files;
    if (!ok.files.length) { e.stopImmediatePropagation(); input.value = ""; }
  }, true);
  const ours = new WeakSet();
  document.addEventListener("drop", (e) => {
    if (ours.has(e) || !inBox(e.target) || !e.dataTransfer || !e.dataTransfer.files.length) return;
    const [ok, big] = split(e.dataTransfer.files);
    if (!big.length) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    note(big);
    const again = new DragEvent("drop", {bubbles: true, cancelable: true, composed: true,
                                         dataTransfer: ok});
    ours.add(again);
    e.target.dispatchEvent(again);  // the rest (or nothing) goes to Gradio as a drop
  }, true);
})();
</script>""".replace("%s", KEPT_BACK_ID)


def kept_back(raw: str | None, max_bytes: int) -> list[str]:
    """One refusal line per file the page kept back as too big (``ATTACH_HEAD``'s
    field). Only ever shown to the person whose page sent it; anything malformed is
    ignored, names are cut to their base name."""
    try:
        items = json.loads(raw or "[]")
    except ValueError:
        return []
    lines: list[str] = []
    for item in items[:_KEPT_BACK_MAX] if isinstance(items, list) else []:
        size = item.get("size") if isinstance(item, dict) else None
        if not isinstance(size, (int, float)) or isinstance(size, bool) or not size >= 0:
            continue
        name = Path(str(item.get("name") or "")).name[:200] or "(no name)"
        lines.append(too_big(name, size, max_bytes) + ".")
    return list(dict.fromkeys(lines))


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
    ``refused``: lines for files the page already kept back (``kept_back``)."""
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
