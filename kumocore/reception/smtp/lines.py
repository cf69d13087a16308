"""The checks reception makes of every message's lines: their endings and their length.

``invalid_line_endings = "Deny"`` (KumoMTA's default) refuses a message with a bare CR or
LF, ``"Fix"`` makes each a CRLF; ``line_length_hard_limit`` refuses a line over the limit.
Both answers come from one scan (:func:`scan_lines`), vectorised for large bodies
(:mod:`kumocore.mail.crlf`), a slice at a time with a loop turn in between for very
large ones (:func:`scan_lines_yielding`). Kept apart from the DATA reader
(:mod:`kumocore.reception.smtp.data`), which re-exports these names.
"""

from __future__ import annotations

import asyncio

from kumocore.mail import crlf
from kumocore.mail.body import crlf_paired

#: True when every CR and LF in ``data`` is part of a CRLF pair: the plain definition
#: (:func:`kumocore.mail.body.crlf_paired`); :func:`scan_lines` gives the same answer.
check_line_endings = crlf_paired

__all__ = [
    "SCAN_SLICE",
    "check_line_endings",
    "fix_line_endings",
    "fix_line_endings_yielding",
    "has_long_line",
    "scan_lines",
    "scan_lines_yielding",
]

def has_long_line(data: bytes, limit: int) -> bool:
    """Whether a CRLF-terminated line is longer than ``limit`` octets (CRLF excluded)."""
    if len(data) <= limit:
        return False
    return max(map(len, data.split(b"\r\n"))) > limit


def scan_lines(data: bytes, limit: int) -> tuple[bool, bool]:
    """``(has_long_line(data, limit), check_line_endings(data))`` in one pass.

    Reception needs both answers for every message; computed separately they take three
    ``count`` passes (one for the two-byte CRLF, the slowest) and a ``split``: about
    120 us at 50 KB. ``splitlines`` breaks at CRLF, CR and LF alike; the line lengths
    then tell both answers. Every terminator is a CRLF exactly when the terminators take
    two bytes each (a bare CR or LF takes one), and the lines are then the CRLF lines.
    Every body takes :mod:`kumocore.mail.crlf`'s C scan where it was built (both answers
    exact). Without it, large bodies take its vectorised scan when NumPy is there: it
    tells the endings, and that no line can be long for nearly every body (one whose
    LFs come less often is walked by :func:`_crlf_line_over`).
    """
    if not data:
        return False, True
    native = crlf.crlf_scan_native
    if native is not None:  # both answers exact, at every size
        clean, short_lines = native(data, limit)
        return (not short_lines if clean else has_long_line(data, limit)), clean
    vectorised = crlf.crlf_scan_vectorised
    if vectorised is not None and len(data) >= crlf.VECTOR_MIN:
        clean, short_lines = vectorised(data, limit)
        if not clean:
            return has_long_line(data, limit), False
        return (not short_lines and _crlf_line_over(data, limit)), True
    lines = data.splitlines()
    # splitlines gives no empty last item after a final terminator: count terminators.
    terminators = len(lines) if data.endswith((b"\r", b"\n")) else len(lines) - 1
    if len(data) - len(b"".join(lines)) != 2 * terminators:
        return has_long_line(data, limit), False
    return _crlf_line_over(data, limit), True


def _crlf_line_over(data: bytes, limit: int) -> bool:
    """Whether a line of ``data``, whose every LF ends a CRLF, is over ``limit`` octets.

    Each step asks ``rfind`` (``memrchr``) for the last LF within reach of a line of the
    limit, so a body of short lines costs one call per ~1,000 bytes, not one per line."""
    size = len(data)
    pos = 0  # the start of a line
    rfind = data.rfind
    while size - pos > limit:  # what is left may hold a line over the limit
        lf = rfind(b"\n", pos, pos + limit + 2)
        if lf < 0:
            return True
        pos = lf + 1
    return False


#: Bodies larger than this are scanned a slice at a time, yielding to the loop in between.
SCAN_SLICE = 1024 * 1024


async def scan_lines_yielding(data: bytes, limit: int) -> tuple[bool, bool]:
    """:func:`scan_lines`, one :data:`SCAN_SLICE` at a time with a loop turn in between.

    ``splitlines`` holds the GIL, so a thread would not help: a 20 MiB body of short lines
    took ~100 ms in one call, during which no other client was served. Slices end just
    after a CRLF, so no line (by either definition: CRLF-terminated for the length, any
    terminator for the endings) and no CRLF pair is split between two of them.
    """
    if len(data) <= SCAN_SLICE:
        return scan_lines(data, limit)
    clean = True
    start = 0
    while start < len(data):
        end = len(data) if len(data) - start <= SCAN_SLICE else (
            data.rfind(b"\r\n", start, start + SCAN_SLICE) + 2)
        if end == 1:  # rfind found no CRLF in a whole slice: a line longer than one
            if limit < SCAN_SLICE - 1:
                # Too long, whatever follows (and its endings are not asked then):
                # scanning it whole held the loop, 73 ms for 19 MB of bare LFs.
                return True, clean
            found = data.find(b"\r\n", start + SCAN_SLICE - 1)  # take it whole
            end = len(data) if found < 0 else found + 2
        long_line, slice_clean = scan_lines(data[start:end], limit)
        if long_line:
            return True, clean and slice_clean
        clean = clean and slice_clean
        start = end
        await asyncio.sleep(0)
    return False, clean


def fix_line_endings(data: bytes) -> bytes:
    """Turn every bare CR and bare LF into CRLF (``invalid_line_endings = "Fix"``).

    Three C passes (each CRLF to LF, each CR left to LF, each LF to CRLF) give what
    ``re.sub(rb"\r\n|\r|\n", b"\r\n", data)`` gives, 7-8 times faster on a body of
    nothing but line ends (0.7 s against 5.6 s for 19 MB of bare CRs)."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


#: Bytes fixed per call of :func:`fix_line_endings_yielding`: about 10 ms of bare CRs.
FIX_SLICE = 256 * 1024


async def fix_line_endings_yielding(data: bytes) -> bytes:
    """:func:`fix_line_endings`, one :data:`FIX_SLICE` at a time with a loop turn in
    between: in one call, a 19 MB body of bare CRs held the event loop for 4-6 s
    (tests/smtp/test_adversary_line_endings.py). A slice never ends between the CR and
    the LF of a pair; a CR it ends with is a bare one, fixed alone as the whole would."""
    if len(data) <= FIX_SLICE:
        return fix_line_endings(data)
    pieces: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + FIX_SLICE, len(data))
        if data[end - 1 : end + 1] == b"\r\n":
            end += 1
        pieces.append(fix_line_endings(data[start:end]))
        start = end
        await asyncio.sleep(0)
    return b"".join(pieces)
