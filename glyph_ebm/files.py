"""Writing files so that nothing the user had is lost: every file is written to a temporary
file in the same folder, flushed to disk and then renamed over the target (``os.replace`` is
atomic), so a crash or Ctrl-C leaves either the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path, binary: bool = False):
    """``with atomic_write(path) as fh: fh.write(...)``: ``fh`` is a temporary file next to
    ``path`` that replaces ``path`` when the block ends without an error (and is removed when
    it does not). Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with (open(tmp, "wb") if binary else open(tmp, "w", newline="")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)


def write_json(path, obj, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def start_afresh(folder) -> Path | None:
    """The one ``--overwrite`` rule of every command: an existing, non-empty ``folder`` is kept
    as ``<folder>.old-<time>`` (renamed, never deleted) so that the command can start afresh in
    ``folder``. Returns where the old folder went (``None`` when there was nothing to keep)."""
    folder = Path(folder)
    if not folder.exists() or not any(folder.iterdir()):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = folder.with_name(f"{folder.name}.old-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = folder.with_name(f"{folder.name}.old-{stamp}-{n}")
    folder.rename(backup)
    print(f"kept the previous contents of {folder} as {backup}", file=sys.stderr)
    return backup
