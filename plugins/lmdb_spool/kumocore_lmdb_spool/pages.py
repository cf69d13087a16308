"""Letting go of the pages of a memory-mapped file that a scan brought into the RSS.

LMDB reads through a shared, read-only memory map. When a read faults in one page, Linux
also maps the pages around it that are already in the page cache ("fault-around", 64 KiB
by default), and LMDB's MADV_RANDOM does not stop that. Listing a million keys at
start-up therefore mapped a quarter of the bodies next to them into the process: 200 MiB
of RSS for 200,000 scheduled 2 KB messages, page cache that is not kumocore's memory
but shows in its RSS. ``madvise(MADV_DONTNEED)`` on a shared file mapping drops those
page-table entries and nothing else: the pages stay in the page cache and the file, and a
later read maps them again. Linux only; elsewhere nothing happens.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

__all__ = ["unmap_cached_pages"]

_MADV_DONTNEED = 4


def _mappings_of(path: str) -> list[tuple[int, int]]:
    """(start, end) of every mapping of ``path`` in this process."""
    real = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].rstrip("\n") == real:
                    start, end = (int(part, 16) for part in fields[0].split("-"))
                    found.append((start, end))
    except OSError:
        return []
    return found


@functools.cache
def _madvise() -> Any:
    """libc's ``madvise``, looked up once (the process's own symbols: no library search)."""
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return madvise


def unmap_cached_pages(path: str) -> int:
    """Drop this process's mapped pages of the file at ``path``; the bytes released."""
    if not sys.platform.startswith("linux"):
        return 0
    madvise = _madvise()
    try:  # the map is as large as the environment may grow; pages past the end never are
        size = os.path.getsize(path)
    except OSError:
        return 0
    released = 0
    for start, end in _mappings_of(path):
        length = min(end - start, size)
        if length > 0 and madvise(start, length, _MADV_DONTNEED) == 0:
            released += length
    return released
