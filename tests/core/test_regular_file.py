"""read_regular_file: a FIFO, a device or a directory named where a file is expected is
refused at once with a reason, never waited on; a regular file is read up to a bound."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from kumocore.regular_file import NotARegularFile, read_regular_file
from tests.support.fifo import late_writer_fifo
from tests.support.ticker import LoopTicker


async def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    with late_writer_fifo(tmp_path / "key", b"secret") as fifo:
        async with LoopTicker() as ticker:
            with pytest.raises(NotARegularFile, match="a FIFO") as caught:
                read_regular_file(fifo)
    assert caught.value.errno == errno.EINVAL
    assert caught.value.filename == str(fifo)
    assert ticker.longest < 0.1  # waiting for the writer: 0.3 s


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("/dev/zero", "a character device"),
        ("/dev/null", "a character device"),
        ("/", "a directory"),
    ],
)
def test_devices_and_directories_are_refused_with_their_kind(name: str, kind: str) -> None:
    with pytest.raises(NotARegularFile, match=kind):
        read_regular_file(name, 16)


def test_a_regular_file_is_read_whole_or_up_to_one_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path) == b"x" * 100
    assert read_regular_file(path, 10) == b"x" * 11
    assert read_regular_file(path, 100) == b"x" * 100


def test_a_missing_file_fails_as_open_does(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing")
