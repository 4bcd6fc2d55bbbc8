from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tlsgate.errors import AlreadyExists, StorageError
from tlsgate.store.files import PRIVATE, atomic_write, ensure_private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_file_is_0600_even_with_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "key.pem", b"secret", mode=PRIVATE)
    finally:
        os.umask(old)
    assert mode(tmp_path / "key.pem") == 0o600
    assert (tmp_path / "key.pem").read_bytes() == b"secret"


def test_replace_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "cert.pem"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem"]


def test_no_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    atomic_write(target, b"first", mode=PRIVATE, overwrite=False)
    with pytest.raises(AlreadyExists):
        atomic_write(target, b"second", mode=PRIVATE, overwrite=False)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        atomic_write(tmp_path / "nope" / "x.pem", b"x")


def test_private_dir(tmp_path: Path) -> None:
    d = ensure_private_dir(tmp_path / "a" / "b")
    assert mode(d) == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match=r"not a directory|cannot create"):
        ensure_private_dir(tmp_path / "file")
