"""Whether every CR and LF of a message is part of a CRLF pair, vectorised when it pays;
and, from the same pass, whether any of its lines may be over a length limit.

Reception asks both of every message (``invalid_line_endings = "Deny"``, the default, and
``line_length_hard_limit``). Where the package was built with its C extension
(:data:`crlf_scan_native`, ``_crlfscan.c``: sixteen octets per comparison, exact line
lengths, 7 us for 100 KB and 0.2 us for 2 KB) that answers both at every size; the rest
of this module is the fallback for a build without a C compiler.

CPython has no fast primitive for the first: ``splitlines`` makes an object per line
and ``count(b"\\r\\n")`` walks the bytes one at a time, 60-80 us for a 100 KB body.
With NumPy (the ``fast`` extra, like uvloop) two byte comparisons and one shifted
comparison answer it at memory speed: about 13 us for 100 KB. Below :data:`VECTOR_MIN`
bytes NumPy's fixed cost (~3 us) is more than the plain pass, so small messages keep
the plain pass.

The line lengths come from the LF positions the first test already marked
(:func:`_lf_in_every_block`): a line over the limit is a run of non-LF bytes at least
half the limit long twice over, so it holds a whole block of that half-width, aligned,
with no LF in it. One reduction over the blocks replaces the ~100 ``rfind`` calls per
100 KB of the exact walk (18 us of the event loop at 100 KB, the fourteenth round of
docs/performance.md); only a body that has such a block is walked exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Bodies at least this large take the vectorised test when NumPy is installed.
VECTOR_MIN = 16 * 1024

#: ``(data, limit) -> (clean, lines_within_limit)``; see :func:`_load_vectorised`.
Scan = Callable[[bytes, int], tuple[bool, bool]]


def _load_vectorised() -> Scan | None:
    try:
        import numpy as np
    except ImportError:  # NumPy is optional: reception falls back to the plain pass
        return None

    def crlf_scan(data: bytes, limit: int) -> tuple[bool, bool]:
        """``(every CR and LF of data is in a CRLF pair, no line can be over limit)``; the
        second is only meant for a clean ``data``: False there means "not known", and the
        caller checks."""
        if not data:
            return True, True
        octets = np.frombuffer(data, dtype=np.uint8)
        cr = octets == 13
        lf = octets == 10
        if lf[0] or cr[-1]:  # an LF with nothing before it, a CR with nothing after it
            return False, False
        # Paired exactly when the CR positions, moved one octet on, are the LF positions.
        if np.not_equal(cr[:-1], lf[1:]).any():
            return False, False
        return True, _lf_in_every_block(lf, limit)

    def _lf_in_every_block(lf: Any, limit: int) -> bool:
        # A line over ``limit`` has at least limit + 1 bytes before its CR, or before the
        # end of the data: a run of limit + 1 non-LF bytes. Any run of 2 * width - 1
        # bytes covers one whole block [k * width, (k + 1) * width), the last one
        # before a shorter remainder included; so with an LF in every block no line is
        # over the limit.
        width = (limit + 2) // 2
        rows = len(lf) // width
        if width < 1 or rows == 0:
            return False  # nothing to go by: the exact walk decides
        return bool(lf[: rows * width].reshape(rows, width).any(axis=1).all())

    return crlf_scan


#: The vectorised CRLF test and line-length filter in one pass, or None without NumPy.
crlf_scan_vectorised: Scan | None = _load_vectorised()


def _load_native() -> Scan | None:
    try:
        from kumocore.mail._crlfscan import scan
    except ImportError:  # built only where a C compiler was (setup.py: optional)
        return None
    return scan


#: The one-pass C test (``kumocore/mail/_crlfscan.c``), exact for both answers at every
#: size: used first when it was built.
crlf_scan_native: Scan | None = _load_native()
