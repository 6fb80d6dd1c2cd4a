"""Replacing a file so that a crash or an error never leaves a half-written file at its path: the new
file is written under a temporary name in the same folder (a rename across file systems would not be
atomic), flushed to disk with fsync, renamed over the path with os.replace (atomic on POSIX and
Windows), and the folder is fsynced so that the rename itself survives a power cut."""
from __future__ import annotations

import contextlib
import os
import secrets
import stat


@contextlib.contextmanager
def replace_atomically(path):
    """Yields a temporary path to write the new file to. If the block finishes, that file replaces
    `path`; if it raises, the temporary file is removed and whatever was at `path` is untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    try:
        mode = _new_file_mode(tmp, path)
        yield tmp
        _fsync(tmp, os.O_RDWR)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def _new_file_mode(tmp, path) -> int:
    """Creates the empty temporary file and returns the permissions the final file should have: the
    old file's, or what open() would give a new one under the umask. Writers that replace the file
    they are given (safetensors >= 0.8 does) would otherwise leave it readable by its owner only."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return stat.S_IMODE(os.stat(path).st_mode if os.path.exists(path) else os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _fsync(path, flags):
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder):
    try:
        _fsync(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its rename is durable once MoveFileEx returns
        pass
