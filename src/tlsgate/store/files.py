"""Crash-safe file writes: a reader sees the old file or the new one, never half of either.

The sequence is the classic one (write a temporary file in the same directory, fsync it, rename
over the target, fsync the directory) because a rename is the only atomic replace POSIX offers and
the directory fsync is what makes the rename itself survive a power cut. Private keys are created
0600 from the first byte: chmod after writing would leave a window where they are readable.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tlsgate.errors import AlreadyExists, StorageError

__all__ = ["PRIVATE", "PUBLIC", "atomic_write", "ensure_private_dir"]

PRIVATE = 0o600
PUBLIC = 0o644


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700 if missing; an existing directory is left as is."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create directory {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise StorageError(f"{path} exists and is not a directory")
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = PUBLIC, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``.

    With ``overwrite=False`` an existing file is never replaced, even by a racing writer: the final
    step is a hard link, which fails if the name exists, instead of a rename.
    """
    directory = path.parent
    if not directory.is_dir():
        raise StorageError(f"cannot write {path}: directory {directory} does not exist")
    if not overwrite and path.exists():
        raise AlreadyExists(f"{path} already exists (use --force to replace it)")
    tmp = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise AlreadyExists(f"{path} already exists (use --force to replace it)") from None
            finally:
                os.unlink(tmp)
        _fsync_dir(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
