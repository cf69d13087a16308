"""Reading the DATA section: fast, and safe against SMTP smuggling.

aiosmtpd reads DATA one line per ``await``, which dominates the cost of a small message.
Here the stream is read with ``readuntil(b".\\r\\n")``: every end-of-data marker
(``CRLF . CRLF``) ends with ``.\\r\\n``, so each call returns a large chunk that is either the
rest of the message or ends at a line finishing in a dot. Only ``CRLF . CRLF`` ends the
data (or ``. CRLF`` straight after the DATA command's own CRLF): ``LF . LF``,
``LF . CRLF``, ``CR . CR``... are message content. That is what makes smuggling
impossible here: whatever a client hides behind a bare-LF "end of data" stays inside the
one message, and :func:`check_line_endings` then rejects it (``invalid_line_endings =
"Deny"``, the default) or normalises it (``"Fix"``) — never a second message.

While DATA is read the stream limit is raised to the message size limit so ``readuntil``
can search a whole message in the buffer; it is restored afterwards. A message over
``max_message_size`` is read to its end and discarded (the reply comes after the final
dot, RFC 5321 4.2.5, so the client does not get out of step), keeping nothing in memory.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

__all__ = [
    "DataTooBig",
    "check_line_endings",
    "fix_line_endings",
    "has_long_line",
    "read_data",
    "unstuff",
]

_DOT_CRLF = b".\r\n"
_END = b"\r\n.\r\n"
_ANY_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class DataTooBig:
    """The client sent more than the limit; everything up to the final dot was read."""

    size: int


async def read_data(reader: asyncio.StreamReader, max_size: int) -> bytes | DataTooBig:
    """Read up to the end-of-data marker; return the raw (still dot-stuffed) data.

    The returned bytes end with the last line's CRLF (or are empty); the final ``.\\r\\n``
    is consumed. Raises ``asyncio.IncompleteReadError`` if the client goes away.
    """
    chunks: list[bytes] = []
    size = 0
    tail = b"\r\n"  # the last bytes seen: the DATA command line ended with CRLF
    too_big = False
    # ``_limit`` is the only StreamReader knob for how far readuntil may search; aiosmtpd
    # already manipulates the reader's internals in the same way for STARTTLS.
    saved_limit = reader._limit  # type: ignore[attr-defined]
    reader._limit = max_size + len(_END)  # type: ignore[attr-defined]
    try:
        while True:
            try:
                chunk = await reader.readuntil(_DOT_CRLF)
            except asyncio.LimitOverrunError as exc:
                # Over the limit without a marker in sight: drop what cannot be part of one.
                skipped = await reader.readexactly(exc.consumed)
                size += len(skipped)
                tail = (tail + skipped[-4:])[-4:]
                too_big = True
                chunks.clear()
                continue
            last = chunk[-5:] if len(chunk) >= 5 else (tail + chunk)[-5:]
            if last == _END:
                chunks.append(chunk[:-3])
                size += len(chunk) - 3
                break
            size += len(chunk)
            tail = chunk[-4:]
            if too_big or size > max_size:
                too_big = True
                chunks.clear()
            else:
                chunks.append(chunk)
    finally:
        reader._limit = saved_limit  # type: ignore[attr-defined]
    if too_big or size > max_size:
        return DataTooBig(size)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def unstuff(data: bytes) -> bytes:
    """Remove the transparency dot of each line that starts with one (RFC 5321 4.5.2)."""
    if data.startswith(b"."):
        data = data[1:]
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n")
    return data


def has_long_line(data: bytes, limit: int) -> bool:
    """Whether a CRLF-terminated line is longer than ``limit`` octets (CRLF excluded)."""
    if len(data) <= limit:
        return False
    return max(map(len, data.split(b"\r\n"))) > limit


def check_line_endings(data: bytes) -> bool:
    """True when every CR and LF in ``data`` is part of a CRLF pair."""
    pairs = data.count(b"\r\n")
    return data.count(b"\r") == pairs and data.count(b"\n") == pairs


def fix_line_endings(data: bytes) -> bytes:
    """Turn every bare CR and bare LF into CRLF (``invalid_line_endings = "Fix"``)."""
    return _ANY_EOL.sub(b"\r\n", data)
