from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from serhpo.files import current_umask, honour_umask


@pytest.fixture
def umask_027() -> Iterator[int]:
    """A group-readable umask for the test, the caller's restored afterwards."""
    previous = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(previous)


def test_the_umask_is_read_without_changing_it(umask_027: int) -> None:
    assert current_umask() == umask_027
    assert current_umask() == umask_027


def test_temporary_files_and_folders_get_the_modes_of_open_and_mkdir(
    tmp_path: Path, umask_027: int
) -> None:
    handle, name = tempfile.mkstemp(dir=tmp_path)
    os.close(handle)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o600  # what mkstemp does
    honour_umask(Path(name))
    honour_umask(folder, directory=True)
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o640
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
