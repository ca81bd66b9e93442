"""The Documents tab: upload files into your own collection (ingested with progress),
see your collections and sources next to the shared ones, delete a source.

Uploads are checked here for type and size before ingestion, so a 200 MB file or an
unsupported type is refused with the limit named instead of failing half-way.

Only bytes this server received are ingested. A Gradio event names its files by path
(``FileData.path``) and a client may put any path there. Two checks stand in the way:
Gradio's own (only files inside its upload folder are taken as input; ``ui.app`` turns it
on, since under ``gr.mount_gradio_app`` it never ran), and ``received_upload`` here: the
file must be one Gradio's ``/upload`` route wrote in this process (``upload_file_set``),
its real path inside the upload folder. The upload folder also holds files that did not
come from a user's upload (copies Gradio makes for outputs and downloads), hence the
second check. Taking the file as bytes (``type="binary"``) would not help: Gradio reads
those bytes from the same client-named path. The route's paths are
``<cache>/<sha256(seed + bytes)>/<name>``, so naming another user's upload takes its
contents and the server's secret seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from gradio.context import LocalContext
from gradio.utils import get_upload_folder

from assistant.audit import audit
from assistant.orchestrator import Assistant
from ui.chat_tab import QUIET, friendly
from ui.identity import Identity
from ui.upload_limit import DOCS_FIELD, kept_back, too_big

__all__ = ["ALLOWED_TYPES", "build_documents", "check_upload", "discard_upload", "keep_upload",
           "received_upload", "sources_frame", "upload_folder"]

log = logging.getLogger(__name__)
ALLOWED_TYPES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
COLUMNS = ["id", "collection", "scope", "title", "file", "chunks", "updated"]
UPLOAD_COLLECTION = "uploads"
NOT_RECEIVED = "was not uploaded to this server (upload the file itself, not a path)"


def received_upload(path: str | os.PathLike[str]) -> Path | None:
    """The real path of a file Gradio's ``/upload`` route wrote in this process, or None.

    Its real path (symlinks resolved) must be a regular file inside Gradio's upload
    folder, the path as named must not be a symlink, and the route must have recorded it
    (``Blocks.upload_file_set``; only a Gradio without that record leaves the folder
    check as the whole rule). Outside a Gradio request nothing is vouched for."""
    raw = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
    if not raw or "\0" in raw or raw.startswith(("http://", "https://")):
        return None
    named = os.path.abspath(raw)
    real = os.path.realpath(named)
    root = os.path.realpath(get_upload_folder())
    if real == root or os.path.commonpath([root, real]) != root or os.path.islink(named) \
            or not os.path.isfile(real):
        return None
    blocks = LocalContext.blocks.get(None)
    uploaded = getattr(blocks, "upload_file_set", None) if blocks is not None else None
    if blocks is None or (uploaded is not None and raw not in uploaded and named not in uploaded):
        return None
    return Path(real)


def discard_upload(path: Path) -> None:
    """Remove a received file from Gradio's cache once it is kept in the user's folder:
    the cache is shared by every user and Gradio never empties it here, so the bytes
    would outlive a deleted source there."""
    with contextlib.suppress(OSError):
        path.unlink()
        path.parent.rmdir()  # Gradio's per-upload folder, when nothing else is in it


def _refuse(user: str, path: str) -> str:
    """Log and audit a refused upload path; the user's sentence names only the base name."""
    audit("upload_refused", user=user, path=path[:500], why="not received by this server")
    log.warning("refused an upload path %s did not upload here: %.200s", user, path)
    return f"{Path(path).name or '(no name)'}: {NOT_RECEIVED}"


_EXCEPTION = re.compile(r"\s*\((?:[A-Z]\w*(?:Error|Exception|Warning)\b)[^)]*\)")


def upload_line(name: str, report: Any) -> str:
    """One line per uploaded file for its owner: what happened, in words. The server's
    path and any exception class stay in the logs (``report.summary()`` has them)."""
    lines = []
    for result in report.files:
        detail = str(result.detail or "")
        for prefix in (f"{result.path}: ", f"{result.path}"):
            detail = detail.removeprefix(prefix)
        reason = _EXCEPTION.sub("", detail).strip() or "could not be read"
        if result.status in ("skipped", "rejected", "missing"):
            lines.append(f"- ✗ {name}: not added — {reason}")
        elif result.status == "unchanged":
            lines.append(f"- ✓ {name}: already there, unchanged")
        else:
            chunks = f"{result.chunks} passage{'s' if result.chunks != 1 else ''}"
            lines.append(f"- ✓ {name}: {result.status}, {chunks}")
        if result.marked:
            lines.append(f"  ({result.marked} of them look like instructions to the assistant: "
                         "kept out of its prompts)")
    return "\n".join(lines) or f"- {name}: nothing to do"


def sources_frame(sources: list[Any]) -> pd.DataFrame:
    """The sources table; a file by its name (where the server keeps it is not the reader's
    business: no data dir, no per-user hash folder, no checkout path on the page)."""
    rows = [{"id": s.id, "collection": s.collection, "scope": "shared" if s.shared else "yours",
             "title": s.title, "file": Path(str(s.path or "")).name, "chunks": s.chunks,
             "updated": s.updated_at.strftime("%Y-%m-%d %H:%M") if s.updated_at else ""}
            for s in sources]
    return pd.DataFrame(rows, columns=COLUMNS)


def check_upload(path: Path, max_bytes: int) -> str | None:
    """Why an upload is refused, or None when it may be ingested."""
    if path.suffix.lower() not in ALLOWED_TYPES:
        return f"{path.name}: unsupported type {path.suffix or '(none)'}; allowed: {', '.join(ALLOWED_TYPES)}"
    size = path.stat().st_size
    return too_big(path.name, size, max_bytes) if size > max_bytes else None


def upload_folder(data_dir: Path, user_id: str) -> Path:
    """``<data dir>/uploads/<sha256(user id)[:32]>``: one folder per user id, whatever
    characters it holds (``..``, ``a@b`` and ``a_b`` are three folders, all inside
    ``uploads/``). Folders named by the old rule (user id with odd characters replaced)
    are left where they are: their sources keep working, a re-upload lands in the new one."""
    return Path(data_dir) / "uploads" / hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]


def keep_upload(data_dir: Path, user_id: str, upload: Path) -> Path:
    """Copy an upload out of Gradio's temp dir to ``<the user's upload folder>/<name>``:
    a stable path, so uploading a changed file of the same name updates that source."""
    folder = upload_folder(data_dir, user_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / upload.name
    shutil.copyfile(upload, target)
    return target


def build_documents(bot: Assistant, identity: Identity) -> gr.Tab:
    max_bytes = int(getattr(bot.settings, "ingest_max_file_mb", 20) * 1_000_000)
    with gr.Tab("Documents", id="documents", visible=False, elem_id="lm-tab-documents") as tab:
        gr.Markdown("Documents lastmile may cite. Your uploads are private to you; shared "
                    f"collections are readable by everyone. Types: {', '.join(ALLOWED_TYPES)}; "
                    f"at most {max_bytes / 1e6:.0f} MB per file.")
        upload = gr.File(label="Upload documents", file_count="multiple", elem_id="lm-upload",
                         file_types=list(ALLOWED_TYPES))
        # Files of the latest pick the page kept out of the upload as too big (ui.upload_limit).
        kept = gr.Textbox(visible="hidden", elem_id=DOCS_FIELD, show_label=False, container=False)
        too_big_lines = gr.Markdown(elem_id="lm-upload-too-big")
        result = gr.Markdown(elem_id="lm-ingest-result")
        table = gr.Dataframe(pd.DataFrame(columns=COLUMNS), interactive=False, wrap=True,
                             elem_id="lm-sources", label="Sources")
        with gr.Row():
            chosen = gr.Textbox(label="Source id", max_lines=1, elem_id="lm-source-id",
                                placeholder="click one of your sources above")
            delete = gr.Button("Delete this source", variant="stop", elem_id="lm-source-delete")

        def corpus() -> Any:
            if bot.documents is None:
                raise gr.Error("Documents are off in this deployment.")
            return bot.documents

        @friendly
        def on_show(request: gr.Request) -> pd.DataFrame:
            user = identity.require(request, "user").user_id
            return sources_frame(corpus().sources(user)) if bot.documents is not None else \
                sources_frame([])

        @friendly
        def on_kept(raw: str | None, request: gr.Request) -> str:
            """The latest pick's files that were too big to upload (empty: none were)."""
            identity.require(request, "user")
            return "\n".join(f"- ✗ {why.removesuffix('.')}: not added" for why in kept_back(raw, max_bytes))

        @friendly
        def on_upload(files: list[Any] | None, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
            user = identity.require(request, "user").user_id
            named = list(dict.fromkeys(str(getattr(f, "name", f)) for f in files or []))
            paths = [p for n in named if (p := received_upload(n)) is not None]
            refused = [_refuse(user, n) for n in named if received_upload(n) is None]
            refused += [why for p in paths if (why := check_upload(p, max_bytes))]
            accepted = [p for p in paths if not check_upload(p, max_bytes)]
            lines = [f"- ✗ {why}" for why in refused]
            for path in progress.tqdm(accepted, desc="Ingesting"):
                kept = keep_upload(Path(bot.settings.data_dir), user, path)
                discard_upload(path)
                report = corpus().ingest([kept], collection=UPLOAD_COLLECTION, user_id=user)
                log.info("upload by %s: %s", user, report.summary())
                lines.append(upload_line(path.name, report))
            return "\n".join(lines) or "Nothing to ingest.", sources_frame(corpus().sources(user)), None

        @friendly
        def on_select(frame: pd.DataFrame, evt: gr.SelectData) -> Any:
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            return int(frame.iloc[row]["id"])

        @friendly
        def on_delete(picked: Any, request: gr.Request) -> tuple[Any, ...]:
            from ui.memory_tab import picked_id

            user = identity.require(request, "user").user_id
            source_id = picked_id(picked)
            if not source_id:
                raise gr.Error("Pick one of your sources first.")
            if not corpus().delete_source(user, int(source_id)):
                raise gr.Error("That source is not yours to delete (or is already gone).")
            gr.Info("Source deleted.")
            return sources_frame(corpus().sources(user)), None

        tab.select(on_show, None, [table], **QUIET)
        upload.upload(on_upload, [upload], [result, table, upload], api_visibility="private")
        kept.change(on_kept, [kept], [too_big_lines], **QUIET)
        table.select(on_select, [table], [chosen], **QUIET)
        delete.click(on_delete, [chosen], [table, chosen], **QUIET)
    return tab
