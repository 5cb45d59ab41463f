import os

import pytest

from kasf.files import atomic_write


def test_atomic_write_gives_the_umask_s_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "out.bin", lambda tmp: open(tmp, "wb").write(b"data"))
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(tmp):
        open(tmp, "wb").write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "out.bin", fail)
    assert list(tmp_path.iterdir()) == []
