"""The C allocator's settings for a server that handles message bodies of 100 KB and more.

A message's body passes through several buffers of its own size (the stream's, the
one ``readexactly`` returns, the one with the ``Received`` header in front, NumPy's line
check), each freed a moment later. glibc gives the top of its heap back to the kernel
(``brk``) once more than ``M_TRIM_THRESHOLD`` of it is free, which starts at 128 KiB and
grows only with the largest chunk freed so far. With bodies of that order coming and
going, the heap was given back and taken again all the time, and every page taken again
is a page fault and a page the kernel zeroes: 14 faults per 100 KB message, about 4 % of
kumocore's CPU per message (docs/performance.md, thirteenth round).

So the server keeps up to :data:`TRIM_THRESHOLD` of free heap instead of giving it back,
and takes chunks up to :data:`MMAP_THRESHOLD` from the heap (a fixed trim threshold
ends glibc's dynamic one for ``mmap``, which would leave each chunk over 128 KiB to its
own ``mmap``/``munmap``, a page fault per page again). The cost is memory the process
keeps after a burst: at most the trim threshold per malloc arena, free for reuse.

An operator's own ``MALLOC_TRIM_THRESHOLD_``/``MALLOC_MMAP_THRESHOLD_`` wins: a setting
given in the environment is left alone. Other C libraries (musl) have no ``mallopt``, or
one that does nothing; nothing is changed there.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_allocator"]

#: Free heap kept at its top before any is given back to the kernel.
TRIM_THRESHOLD = 32 * 1024 * 1024
#: Chunks up to this size come from the heap; larger ones get their own mapping.
MMAP_THRESHOLD = 4 * 1024 * 1024

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_SETTINGS = (
    ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
)


def tune_allocator() -> dict[str, int]:
    """Apply the settings glibc takes (see the module's doc); what was set, by name."""
    if not sys.platform.startswith("linux"):
        return {}
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return {}
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied: dict[str, int] = {}
    for variable, parameter, value in _SETTINGS:
        if variable in os.environ:
            continue  # the operator's choice, read by glibc at start-up
        if mallopt(parameter, value) == 1:  # glibc: 1 on success
            applied[variable] = value
    return applied
