"""Writing a file so that a crash or an error never leaves a half-written file at its path: write a
temporary file in the same directory, flush and fsync it, os.replace it over the path (atomic on
POSIX and Windows), then fsync the directory so the rename itself survives a power cut."""
from __future__ import annotations

import os
import tempfile


def write_atomic(path, data: bytes) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)
    return path


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; the rename is already durable there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
