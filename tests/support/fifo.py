"""A FIFO whose writer shows up late, for the tests that check a policy-named file is
never opened in a way that waits on the event loop.

Opening a FIFO for reading blocks until some process opens it for writing. The writer
here comes after ``delay`` seconds (a thread opening it read-write, which never blocks on
Linux), writes ``data`` and closes it: code that waits for it stalls the loop for the
delay and then reads ``data``; code that refuses non-regular files does not wait at all.
A test therefore fails (a long loop gap) on the old code instead of hanging forever.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def late_writer_fifo(path: Path, data: bytes = b"", delay: float = 0.3) -> Iterator[Path]:
    os.mkfifo(path)
    stop = threading.Event()

    def write() -> None:
        stop.wait(delay)
        fd = os.open(path, os.O_RDWR)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield path
    finally:
        writer.join(10)
