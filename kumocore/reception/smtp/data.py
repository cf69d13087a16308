"""Reading the DATA section: fast, and safe against SMTP smuggling.

aiosmtpd reads DATA one line per ``await``, which dominates the cost of a small message.
Here the stream is read with ``readuntil(b".\\r\\n")``: every end-of-data marker
(``CRLF . CRLF``) ends with ``.\\r\\n``, so each call returns a large chunk that is either the
rest of the message or ends at a line finishing in a dot (and once the buffered input
shows that the data does not end right here, with ``readuntil(b"\\r\\n.\\r\\n")``, which
takes a whole message in one call, see :func:`_end_not_next`). Only ``CRLF . CRLF`` ends the
data (or ``. CRLF`` straight after the DATA command's own CRLF): ``LF . LF``,
``LF . CRLF``, ``CR . CR``... are message content. That is what makes smuggling
impossible here: whatever a client hides behind a bare-LF "end of data" stays inside the
one message, whose bare line ends :func:`scan_lines` then finds: it is rejected
(``invalid_line_endings = "Deny"``, the default) or normalised (``"Fix"``) — never a
second message.

While DATA is read the stream limit is raised to :data:`READ_WINDOW` (64 KiB) so
``readuntil`` can search a whole ordinary message in the buffer; it is restored
afterwards. A larger message is taken a window at a time. A message over
``max_message_size`` is read to its end and discarded (the reply comes after the final
dot, RFC 5321 4.2.5, so the client does not get out of step), keeping nothing in memory.

Memory: what a session has read of an unfinished message is charged to its listener's
:class:`DataBudget` (``max_data_buffered``) and stays charged until the transaction was
answered. A chunk that does not fit makes the rest of that message be read and
discarded, and the transaction gets :data:`OVER_BUDGET_REPLY` (a temporary refusal: the
client retries later). Besides the budget, a session holds at most about two read windows
in its stream buffer (the transport stops reading beyond that).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from kumocore.reception.smtp.dots import has_dot_line

__all__ = [
    "OVER_BUDGET_REPLY",
    "READ_WINDOW",
    "DataBudget",
    "DataOverBudget",
    "DataTooBig",
    "check_line_endings",
    "fix_line_endings",
    "has_long_line",
    "read_data",
    "scan_lines",
    "scan_lines_yielding",
    "unstuff",
]

_DOT_CRLF = b".\r\n"
_END = b"\r\n.\r\n"
_ANY_EOL = re.compile(rb"\r\n|\r|\n")


#: How far one ``readuntil`` may search: ordinary messages are read in one call.
READ_WINDOW = 64 * 1024
#: The reply to a transaction whose DATA did not fit in the listener's budget.
OVER_BUDGET_REPLY = (452, "4.3.1 insufficient system resources, try again later")


@dataclass(frozen=True, slots=True)
class DataTooBig:
    """The client sent more than the limit; everything up to the final dot was read."""

    size: int


@dataclass(frozen=True, slots=True)
class DataOverBudget:
    """The listener's DATA budget was spent; the message was read to its end, discarded."""

    size: int


class DataBudget:
    """Bytes of DATA held in memory by the sessions of one listener, at most ``limit``."""

    __slots__ = ("held", "limit", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.refused = 0  # transactions refused for want of budget, for tests and metrics

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


async def read_data(
    reader: asyncio.StreamReader, max_size: int, budget: DataBudget | None = None
) -> bytes | DataTooBig | DataOverBudget:
    """Read up to the end-of-data marker; return the raw (still dot-stuffed) data.

    The returned bytes end with the last line's CRLF (or are empty); the final ``.\\r\\n``
    is consumed. Raises ``asyncio.IncompleteReadError`` if the client goes away. With a
    ``budget``, the returned bytes stay charged to it: the caller gives them back.
    """
    chunks: list[bytes] = []
    size = 0
    held = 0  # charged to the budget
    tail = b"\r\n"  # the last bytes seen: the DATA command line ended with CRLF
    too_big = over_budget = False
    # ``_limit`` is the only StreamReader knob for how far readuntil may search; aiosmtpd
    # already manipulates the reader's internals in the same way for STARTTLS.
    saved_limit = reader._limit  # type: ignore[attr-defined]
    reader._limit = min(max_size, READ_WINDOW) + len(_END)  # type: ignore[attr-defined]
    try:
        while True:
            try:
                chunk = await reader.readuntil(_END if _end_not_next(reader, tail) else _DOT_CRLF)
            except asyncio.LimitOverrunError as exc:
                # A window without a marker in sight: take what cannot be part of one.
                chunk = await reader.readexactly(exc.consumed)
                last = b""
            else:
                last = chunk[-5:] if len(chunk) >= 5 else (tail + chunk)[-5:]
            end = last == _END
            if end:
                chunk = chunk[:-3]
            size += len(chunk)
            tail = (tail + chunk[-4:])[-4:]
            if not (too_big or over_budget):
                if size > max_size:
                    too_big = True
                elif budget is not None and not budget.take(len(chunk)):
                    over_budget = True
                else:
                    held += len(chunk)
                    chunks.append(chunk)
                if too_big or over_budget:  # keep reading to the end, keep nothing
                    chunks.clear()
                    if budget is not None:
                        budget.give(held)
                    held = 0
            if end:
                break
    except BaseException:
        if budget is not None:
            budget.give(held)
        raise
    finally:
        reader._limit = saved_limit  # type: ignore[attr-defined]
    if too_big:
        return DataTooBig(size)
    if over_budget:
        assert budget is not None
        budget.refused += 1
        return DataOverBudget(size)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if budget is not None and held != len(data):  # cannot happen; keep the books exact
        budget.give(held - len(data))
    return data


def _end_not_next(reader: asyncio.StreamReader, tail: bytes) -> bool:
    """Whether the end of data, if it is in the stream at all, is its first CRLF.CRLF.

    The marker can only hide from a search for ``CRLF . CRLF`` by starting with the CRLF
    already read (``tail``): then the stream starts with ``. CRLF``. When the buffered
    input shows it does not, one ``readuntil(CRLF . CRLF)`` takes the whole message,
    instead of one ``readuntil(. CRLF)`` per line that ends in a full stop (most lines of
    prose: 24 calls for a 2 KB newsletter). With too little buffered to tell, the
    line-by-line search is used, which is always right.
    """
    # ``_buffer`` is only peeked at (StreamReader has no peek); ``_limit`` is already
    # handled the same way above.
    buffered: bytearray = reader._buffer  # type: ignore[attr-defined]
    return tail.endswith(b"\r\n") and len(buffered) >= 3 and not buffered.startswith(_DOT_CRLF)


def unstuff(data: bytes) -> bytes:
    """Remove the transparency dot of each line that starts with one (RFC 5321 4.5.2)."""
    if data.startswith(b"."):
        data = data[1:]
    if has_dot_line(data):
        data = data.replace(b"\r\n.", b"\r\n")
    return data


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
    """
    if not data:
        return False, True
    lines = data.splitlines()
    lengths = list(map(len, lines))
    # splitlines gives no empty last item after a final terminator: count terminators.
    terminators = len(lines) if data.endswith((b"\r", b"\n")) else len(lines) - 1
    if len(data) - sum(lengths) != 2 * terminators:
        return has_long_line(data, limit), False
    return max(lengths) > limit, True


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
        if end <= start + 1:  # one line longer than a slice: take it whole
            found = data.find(b"\r\n", start + SCAN_SLICE - 1)
            end = len(data) if found < 0 else found + 2
        long_line, slice_clean = scan_lines(data[start:end], limit)
        if long_line:
            return True, clean and slice_clean
        clean = clean and slice_clean
        start = end
        await asyncio.sleep(0)
    return False, clean


def check_line_endings(data: bytes) -> bool:
    """True when every CR and LF in ``data`` is part of a CRLF pair.

    The plain definition; reception gets the same answer from :func:`scan_lines`, which
    the tests hold to this one."""
    pairs = data.count(b"\r\n")
    return data.count(b"\r") == pairs and data.count(b"\n") == pairs


def fix_line_endings(data: bytes) -> bytes:
    """Turn every bare CR and bare LF into CRLF (``invalid_line_endings = "Fix"``)."""
    return _ANY_EOL.sub(b"\r\n", data)
