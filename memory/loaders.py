"""Read one file into plain text (per page for PDFs) and a title, or say why not.

Why our own tiny loaders: the formats are few (text, Markdown, HTML, PDF), and the
stdlib HTML parser plus pypdf cover them without pulling a document framework in.
Every refusal is a ``DocumentRejected`` whose message is the one line the ingest
summary shows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from assistant.errors import DocumentRejected

__all__ = ["KINDS", "LoadedDoc", "kind_of", "load"]

#: suffix -> kind; anything else is tried as text and refused if it looks binary.
KINDS = {".txt": "text", ".text": "text", ".rst": "text", ".md": "markdown", ".markdown": "markdown",
         ".html": "html", ".htm": "html", ".pdf": "pdf"}
_SKIP_TAGS = {"script", "style", "noscript", "template", "svg"}
_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
               "section", "article", "header", "footer", "pre", "blockquote", "hr", "dd", "dt"}


@dataclass
class LoadedDoc:
    title: str
    kind: str
    #: ``(page number or None, text)``; one entry for everything but PDFs.
    pages: list[tuple[int | None, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(t for _, t in self.pages)


def kind_of(path: Path) -> str:
    return KINDS.get(path.suffix.lower(), "text")


def _decode(data: bytes, path: Path) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentRejected(f"{path}: binary file (not text, Markdown, HTML or PDF)", path=str(path))
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes almost anything
        raise DocumentRejected(f"{path}: not valid text", path=str(path))
    controls = sum(1 for c in text[:8192] if ord(c) < 32 and c not in "\n\r\t\f")
    if controls > max(8, len(text[:8192]) // 50):
        raise DocumentRejected(f"{path}: binary file (not text, Markdown, HTML or PDF)", path=str(path))
    return text


class _HTMLText(HTMLParser):
    """Visible text with block breaks, and the <title> (or first <h1>)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self._skip = 0
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        if tag in ("title", "h1"):
            self._in = tag
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        if tag == self._in:
            self._in = None
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
            return
        if self._skip:
            return
        if self._in == "h1":
            self.h1 += data
        self.parts.append(data)


def _clean(text: str) -> str:
    text = re.sub(r"[ \t\f\v\xa0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _markdown_title(text: str, path: Path) -> str:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
    return match.group(1).strip() if match else path.stem


def _pdf(path: Path) -> LoadedDoc:
    import pypdf
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-file chatter; we report once
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted:
            try:  # an empty user password is common ("encrypted" only against editing)
                ok: int = reader.decrypt("")  # a PasswordType, an IntEnum (0: not decrypted)
            except Exception:  # noqa: BLE001 - unsupported crypto etc.
                ok = 0
            if not ok:
                raise DocumentRejected(f"{path}: encrypted PDF (needs a password)", path=str(path))
        pages: list[tuple[int | None, str]] = [(n, _clean(page.extract_text() or ""))
                                               for n, page in enumerate(reader.pages, 1)]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except DocumentRejected:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentRejected(f"{path}: unreadable PDF ({type(exc).__name__}: {str(exc)[:80]})",
                               path=str(path)) from exc
    pages = [(n, t) for n, t in pages if t]
    if not pages:
        raise DocumentRejected(f"{path}: PDF has no extractable text (scanned images?)", path=str(path))
    return LoadedDoc(str(meta_title).strip() or path.stem, "pdf", pages)


def load(path: Path, data: bytes) -> LoadedDoc:
    """Text and title of ``path`` (whose bytes are ``data``); ``DocumentRejected`` if unusable."""
    if not data.strip():
        raise DocumentRejected(f"{path}: empty file", path=str(path))
    kind = kind_of(path)
    if kind == "pdf" or data[:5] == b"%PDF-":
        doc = _pdf(path)
    else:
        text = _decode(data, path)
        if kind == "html":
            parser = _HTMLText()
            parser.feed(text)
            parser.close()
            body = _clean("".join(parser.parts))
            title = " ".join((parser.title or parser.h1).split()) or path.stem
            doc = LoadedDoc(title, kind, [(None, body)])
        else:
            body = _clean(text) if kind == "text" else text.strip()
            title = _markdown_title(body, path) if kind == "markdown" else path.stem
            doc = LoadedDoc(title, kind, [(None, body)])
    if not doc.text.strip():
        raise DocumentRejected(f"{path}: no text in the file", path=str(path))
    return doc
