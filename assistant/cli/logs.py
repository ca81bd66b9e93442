"""Where log lines go: lastmile's own at ``LASTMILE_LOG_LEVEL``, third-party libraries'
at ``LASTMILE_LOG_LEVEL_LIBRARIES`` (WARNING: bm25s, httpx, chromadb ... stay quiet).

Commands log to stderr. ``lastmile chat`` is a conversation in the terminal, so there
the log goes to a file instead (``to_file``) and ``stderr_to`` sends what native code
writes straight to file descriptor 2 (llama.cpp, progress bars) there too: nothing
appears between the replies but the replies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OURS", "setup_logging", "stderr_to"]

#: Our packages' loggers; every other logger is a library's.
OURS = ("assistant", "memory", "guardrails", "ui")
#: Libraries that set their own logger's level when imported (bm25s sets DEBUG), so the
#: root level alone does not hold them.
SELF_LEVELLED = ("bm25s", "chromadb", "httpx", "httpcore", "urllib3", "sentence_transformers")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _level(name: str) -> int:
    return logging.getLevelNamesMapping()[name.upper()]


def setup_logging(level: str = "WARNING", libraries: str = "WARNING", *, verbose: bool = False,
                  to_file: Path | None = None) -> None:
    """One handler on the root logger (stderr, or ``to_file``), libraries at
    ``libraries``, our packages at ``level`` (at least INFO with ``verbose``)."""
    ours = min(_level(level), logging.INFO) if verbose else _level(level)
    handler: logging.Handler
    if to_file is not None:
        to_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(to_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter(FORMAT))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(min(ours, _level(libraries)))
    handler.addFilter(lambda record: _admitted(record, ours, _level(libraries)))
    for name in SELF_LEVELLED:
        logging.getLogger(name).setLevel(_level(libraries))
    for name in OURS:
        logging.getLogger(name).setLevel(ours)


def _admitted(record: logging.LogRecord, ours: int, libraries: int) -> bool:
    """The root sits at the lower of the two levels; each record meets its own."""
    own = record.name.partition(".")[0] in OURS
    return record.levelno >= (ours if own else libraries)


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` (appending) for the block, then back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
