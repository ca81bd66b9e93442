"""The Documents tab: upload files into your own collection (ingested with progress),
see your collections and sources next to the shared ones, delete a source.

Uploads are checked here for type and size before ingestion, so a 200 MB file or an
unsupported type is refused with the limit named instead of failing half-way.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from assistant.orchestrator import Assistant
from ui.chat_tab import QUIET, friendly
from ui.identity import Identity

__all__ = ["ALLOWED_TYPES", "build_documents", "check_upload", "keep_upload", "sources_frame"]

ALLOWED_TYPES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
COLUMNS = ["id", "collection", "scope", "title", "path", "chunks", "updated"]
UPLOAD_COLLECTION = "uploads"


def sources_frame(sources: list[Any]) -> pd.DataFrame:
    rows = [{"id": s.id, "collection": s.collection, "scope": "shared" if s.shared else "yours",
             "title": s.title, "path": s.path, "chunks": s.chunks,
             "updated": s.updated_at.strftime("%Y-%m-%d %H:%M") if s.updated_at else ""}
            for s in sources]
    return pd.DataFrame(rows, columns=COLUMNS)


def check_upload(path: Path, max_bytes: int) -> str | None:
    """Why an upload is refused, or None when it may be ingested."""
    if path.suffix.lower() not in ALLOWED_TYPES:
        return f"{path.name}: unsupported type {path.suffix or '(none)'}; allowed: {', '.join(ALLOWED_TYPES)}"
    size = path.stat().st_size
    if size > max_bytes:
        return (f"{path.name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit "
                "(LASTMILE_INGEST_MAX_FILE_MB)")
    return None


def keep_upload(data_dir: Path, user_id: str, upload: Path) -> Path:
    """Copy an upload out of Gradio's temp dir to ``<data dir>/uploads/<user>/<name>``:
    a stable path, so uploading a changed file of the same name updates that source."""
    folder = data_dir / "uploads" / re.sub(r"[^A-Za-z0-9_.-]", "_", user_id)
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
        result = gr.Markdown(elem_id="lm-ingest-result")
        table = gr.Dataframe(pd.DataFrame(columns=COLUMNS), interactive=False, wrap=True,
                             elem_id="lm-sources", label="Sources")
        with gr.Row():
            chosen = gr.Number(label="Source id", precision=0, elem_id="lm-source-id")
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
        def on_upload(files: list[Any] | None, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
            user = identity.require(request, "user").user_id
            paths = [Path(getattr(f, "name", f)) for f in files or []]
            refused = [why for p in paths if (why := check_upload(p, max_bytes))]
            accepted = [p for p in paths if not check_upload(p, max_bytes)]
            lines = [f"- ✗ {why}" for why in refused]
            for path in progress.tqdm(accepted, desc="Ingesting"):
                kept = keep_upload(Path(bot.settings.data_dir), user, path)
                report = corpus().ingest([kept], collection=UPLOAD_COLLECTION, user_id=user)
                lines.append(f"- {path.name}: {report.summary()}")
            return "\n".join(lines) or "Nothing to ingest.", sources_frame(corpus().sources(user)), None

        @friendly
        def on_select(frame: pd.DataFrame, evt: gr.SelectData) -> Any:
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            return int(frame.iloc[row]["id"])

        @friendly
        def on_delete(source_id: float | None, request: gr.Request) -> tuple[Any, ...]:
            user = identity.require(request, "user").user_id
            if not source_id:
                raise gr.Error("Pick one of your sources first.")
            if not corpus().delete_source(user, int(source_id)):
                raise gr.Error("That source is not yours to delete (or is already gone).")
            gr.Info("Source deleted.")
            return sources_frame(corpus().sources(user)), None

        tab.select(on_show, None, [table], **QUIET)
        upload.upload(on_upload, [upload], [result, table, upload], api_visibility="private")
        table.select(on_select, [table], [chosen], **QUIET)
        delete.click(on_delete, [chosen], [table, chosen], **QUIET)
    return tab
