"""kumo.fs.open when the handler calling it is cancelled (a timeout, a connection that
drops) while its worker thread still runs, and when a policy asks for a huge read: no
descriptor may leak, no two threads may use one descriptor, memory follows the file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from kumocore_lua_policy.stdlib.fs_open import open_file


def descriptors_of(path: Path) -> list[str]:
    """This process's open descriptors that refer to ``path``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found.append(fd)
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return found


async def open_writer(fifo: Path) -> int:
    """A writing end of ``fifo``, once a reader (the worker thread) waits in open()."""
    for _ in range(200):
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            await asyncio.sleep(0.01)
    raise AssertionError("the worker thread never opened the FIFO")


async def test_an_open_cancelled_while_its_thread_opens_the_file_leaves_no_descriptor(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Opening a FIFO to read blocks until a writer comes: the thread is held in open().
    opening = asyncio.ensure_future(open_file(str(fifo), "r"))
    await asyncio.sleep(0.1)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    writer = await open_writer(fifo)  # the thread's open() returns a descriptor now
    try:
        for _ in range(100):  # give the thread's answer time to reach the loop
            await asyncio.sleep(0.01)
            if not descriptors_of(fifo)[1:]:
                break
        assert len(descriptors_of(fifo)) == 1  # the test's own writer, nothing else
    finally:
        os.close(writer)


async def test_a_write_cancelled_in_its_thread_finishes_before_the_next_write_starts(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    file = await open_file(str(fifo), "r+")  # read-write: opening does not wait
    first = b"a" * (1 << 20)  # far more than a pipe holds: the thread blocks in write()
    writing = asyncio.ensure_future(file.write(first))
    await asyncio.sleep(0.1)
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    second = asyncio.ensure_future(file.write(b"B" * 16))
    await asyncio.sleep(0.1)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    received = bytearray()
    try:
        while len(received) < len(first) + 16:
            try:
                received += os.read(reader, 1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.005)
        await second
    finally:
        os.close(reader)
        await file.close()
    # The descriptor was used by one thread at a time: the second write came after the
    # whole first one, not into its middle.
    assert bytes(received) == first + b"B" * 16


async def test_a_read_larger_than_memory_returns_what_the_file_has(tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"twelve bytes")
    file = await open_file(str(path))
    try:
        # OPT_SIZE is an upper bound: a buffer of that size is not set aside first.
        assert await file.read(1 << 45) == b"twelve bytes"
        assert await file.read(1 << 45) == b""
    finally:
        await file.close()


async def test_a_closed_file_is_closed_once_even_when_closed_twice(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"x")
    file = await open_file(str(path))
    assert len(descriptors_of(path)) == 1
    await file.close()
    await file.close()
    assert descriptors_of(path) == []
    with pytest.raises(ValueError, match="attempt to flush a closed file handle"):
        await file.read()


async def test_closing_while_a_cancelled_read_waits_closes_the_file_when_that_read_ends(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    file = await open_file(str(fifo), "r+")
    reading = asyncio.ensure_future(file.read(10))  # nothing written yet: the thread waits
    await asyncio.sleep(0.1)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await asyncio.wait_for(file.close(), 1)  # close does not wait for that thread...
    assert len(descriptors_of(fifo)) == 1  # ...nor pull the descriptor from under it
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(writer, b"wake")  # the thread's read returns
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(descriptors_of(fifo)) == 1:
                break
        assert len(descriptors_of(fifo)) == 1  # the writer alone: the file's is closed
    finally:
        os.close(writer)
