"""Reading the DATA section: fast, and safe against SMTP smuggling.

aiosmtpd reads DATA one line per ``await``, which dominates the cost of a small message.
Here the stream's buffer is searched in place for the end-of-data marker and the whole
message is taken out of it, one copy, once the marker is in it. The marker
``CRLF . CRLF`` is the first line starting with a full stop that holds nothing else, so
the search walks the lines that start with a dot (``memchr`` for full stops: a body
without them, such as base64, is searched at memory speed) and learns on the way whether
the message has any, which :func:`unstuff` then need not search again.

Only ``CRLF . CRLF`` ends the data (or ``. CRLF`` straight after the DATA command's own
CRLF): ``LF . LF``, ``LF . CRLF``, ``CR . CR``... are message content. That is what makes
smuggling impossible here: whatever a client hides behind a bare-LF "end of data" stays
inside the one message, whose bare line ends :func:`scan_lines` then finds: it is
rejected (``invalid_line_endings = "Deny"``, the default) or normalised (``"Fix"``) —
never a second message.

While DATA is read the stream limit is raised to a read window, :data:`READ_WINDOW`
(64 KiB) or half the listener's ``data_buffer_size`` (KumoMTA's option; its default,
128 KiB, gives the same), so the transport keeps reading until two windows are buffered;
it is restored afterwards. A
message that does not fit in two windows is taken out two windows at a time (all but the
last four bytes, which may begin the marker), just before the transport would pause: a
message of up to 128 KiB is copied out of the stream once, a larger one once plus the
join of its pieces. A message over
``max_message_size`` is read to its end and discarded (the reply comes after the final
dot, RFC 5321 4.2.5, so the client does not get out of step), keeping nothing in memory.

Memory: what a session has read of an unfinished message is charged to its listener's
:class:`~kumocore.reception.smtp.budget.DataBudget` (``max_data_buffered``; one client
at most its share) and stays charged until the transaction was answered. A chunk that
does not fit makes the rest of that message be read and discarded, and the transaction
gets :data:`OVER_BUDGET_REPLY` (a temporary refusal: the client retries later). Besides
the budget, a session holds at most about two read windows in its stream buffer (the
transport stops reading beyond that).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kumocore.reception.smtp.budget import Budget, DataBudget
from kumocore.reception.smtp.dots import find_dot_line, has_dot_line
from kumocore.reception.smtp.lines import (
    check_line_endings,
    fix_line_endings,
    has_long_line,
    scan_lines,
    scan_lines_yielding,
)

__all__ = [
    "OVER_BUDGET_REPLY",
    "READ_WINDOW",
    "Budget",
    "DataBudget",
    "DataOverBudget",
    "DataTooBig",
    "Unstuffed",
    "check_line_endings",
    "fix_line_endings",
    "has_long_line",
    "read_data",
    "read_message",
    "scan_lines",
    "scan_lines_yielding",
    "unstuff",
    "unstuff_yielding",
]

_DOT_CRLF = b".\r\n"
_END = b"\r\n.\r\n"


#: Buffered DATA beyond this is taken out of the stream: ordinary messages are read whole.
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


async def read_data(
    reader: asyncio.StreamReader, max_size: int, budget: Budget | None = None,
    window: int | None = None,
) -> bytes | DataTooBig | DataOverBudget:
    """Read up to the end-of-data marker; return the raw (still dot-stuffed) data.

    The returned bytes end with the last line's CRLF (or are empty); the final ``.\\r\\n``
    is consumed. Raises ``asyncio.IncompleteReadError`` if the client goes away. With a
    ``budget``, the returned bytes stay charged to it: the caller gives them back.
    ``window``: the read window (default :data:`READ_WINDOW`; a listener's is half its
    ``data_buffer_size``).
    """
    read = await _read(reader, max_size, budget, window)
    return read if isinstance(read, DataTooBig | DataOverBudget) else read.raw


@dataclass(frozen=True, slots=True)
class Unstuffed:
    """A DATA section as the client meant it, and what reading it taught."""

    message: bytes
    #: No line after the first starts with a full stop: delivery need not search the
    #: message for lines to stuff again (:attr:`kumocore.mail.body.SharedBody.no_dot_lines`).
    no_dot_lines: bool


async def read_message(
    reader: asyncio.StreamReader, max_size: int, budget: Budget | None = None,
    window: int | None = None,
) -> Unstuffed | DataTooBig | DataOverBudget:
    """:func:`read_data`, then unstuffed: the message as the client meant it.

    The reader already knows whether any line starts with a dot, so the common body
    without one is not searched again, here or by delivery. With a ``budget``, what stays
    charged to it is the length of the returned message."""
    read = await _read(reader, max_size, budget, window)
    if isinstance(read, DataTooBig | DataOverBudget):
        return read
    try:
        message = await unstuff_yielding(read.raw, dot_lines=read.dot_lines)
    except BaseException:  # the client went away meanwhile: nothing stays charged
        if budget is not None:
            budget.give(len(read.raw))
        raise
    if budget is not None:
        budget.give(len(read.raw) - len(message))
    # Without a dot line in the raw data, dropping a leading dot makes none either.
    return Unstuffed(message, no_dot_lines=not read.dot_lines)


@dataclass(frozen=True, slots=True)
class _Read:
    raw: bytes
    dot_lines: bool  # some line after the first starts with a dot


class _Collected:
    """The pieces of one DATA section taken from the stream so far, and their books."""

    __slots__ = ("budget", "held", "max_size", "over_budget", "pieces", "size", "too_big")

    def __init__(self, max_size: int, budget: Budget | None) -> None:
        self.max_size = max_size
        self.budget = budget
        self.pieces: list[bytes] = []
        self.size = 0
        self.held = 0  # charged to the budget
        self.too_big = self.over_budget = False

    def take(self, reader: asyncio.StreamReader, buffer: bytearray, size: int, *,
             last: bool = False) -> None:
        """The first ``size`` buffered bytes, taken out of the stream as the next piece.

        One copy, where ``readexactly`` makes two (it slices the buffer into a new
        bytearray before making bytes of it). The ``last`` piece of a message read in
        several windows is joined to them straight from the buffer, and bytes of a
        message already too big or over budget are only counted, never copied."""
        with memoryview(buffer) as view:  # released before the buffer is resized
            piece = view[:size]
            try:
                if self._keeps(size):
                    if last and self.pieces:
                        self.pieces = [b"".join([*self.pieces, piece])]
                    else:
                        self.pieces.append(bytes(piece))
            finally:
                piece.release()
        _drop(reader, buffer, size)

    def _keeps(self, size: int) -> bool:
        """Count ``size`` more bytes; whether they are kept (and charged to the budget)."""
        self.size += size
        if self.too_big or self.over_budget:
            return False
        budget = self.budget
        if self.size > self.max_size:
            self.too_big = True
        elif budget is not None and not budget.take(size):
            self.over_budget = True
        else:
            self.held += size
            return True
        self.pieces.clear()  # keep reading to the end, keep nothing
        self.give_back()
        return False

    def give_back(self) -> None:
        if self.budget is not None:
            self.budget.give(self.held)
        self.held = 0


async def _read(
    reader: asyncio.StreamReader, max_size: int, budget: Budget | None, window: int | None
) -> _Read | DataTooBig | DataOverBudget:
    # The stream's buffer is searched in place and taken with one copy
    # (:meth:`_Collected.take`) once the end is in it; ``_buffer``, ``_limit``,
    # ``_wait_for_data`` and ``_maybe_resume_transport`` are StreamReader internals, used
    # the way aiosmtpd uses them for STARTTLS. ``_limit`` makes the transport pause
    # reading at two windows buffered.
    buffer: bytearray = reader._buffer  # type: ignore[attr-defined]
    got = _Collected(max_size, budget)
    saved_limit = reader._limit  # type: ignore[attr-defined]
    window = window or READ_WINDOW  # read at each call: tests patch READ_WINDOW
    reader._limit = window + len(_END)  # type: ignore[attr-defined]
    dot_lines = False
    start = 0  # the buffer holds no marker that begins before this index
    take_at = 2 * window
    try:
        while True:
            if not got.size and buffer.startswith(_DOT_CRLF):
                end = -2  # the marker's CRLF is the one that ended the DATA command
            else:
                end, dot_lines, start = _find_end(buffer, start, dot_lines)
            if end != -1:
                if end > -2:
                    got.take(reader, buffer, end + 2, last=True)
                _drop(reader, buffer, 3)  # the final ". CRLF"
                break
            if len(buffer) >= take_at:
                # No end in two full windows, where the transport pauses: take all that
                # cannot be part of a marker. Taken sooner, a 100 KB message would be
                # copied one and a half times (a window, then the join with the rest).
                got.take(reader, buffer, len(buffer) - 4)
                start = 0
            await _more(reader, buffer)
    except BaseException:
        got.give_back()
        raise
    finally:
        reader._limit = saved_limit  # type: ignore[attr-defined]
    if got.too_big:
        return DataTooBig(got.size)
    if got.over_budget:
        assert budget is not None
        budget.refused += 1
        return DataOverBudget(got.size)
    pieces = got.pieces
    raw = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return _Read(raw, dot_lines)


def _find_end(buffer: bytearray, start: int, dot_lines: bool) -> tuple[int, bool, int]:
    """``(index of the CRLF . CRLF, any dot line before it, where to search next time)``.

    The index is -1 when the marker is not (entirely) in the buffer yet. The end of data
    is the first dot line whose dot stands alone; :func:`find_dot_line` finds dot lines
    with ``memchr``, so a body without full stops is searched at memory speed (a plain
    search for the five-byte marker cost 50 us per 100 KB). Once one dot line was seen
    the rest is left to that plain search: walking every dot line in Python would let a
    client that sends nothing else cost ~100 ns of the loop per byte."""
    size = len(buffer)
    if not dot_lines:
        at = find_dot_line(buffer, start)
        if at < 0:
            return -1, False, max(start, size - 2)  # a CRLF at the end may begin a marker
        if at + 5 > size:  # the line's end has not arrived: look again from here
            return -1, False, at
        if buffer[at + 3] == 0x0D and buffer[at + 4] == 0x0A:
            return at, False, at
        start = at + 3  # a dot line: from here on, the plain search
    at = buffer.find(_END, start)
    return at, True, (at if at >= 0 else max(start, size - 4))


def _drop(reader: asyncio.StreamReader, buffer: bytearray, size: int) -> None:
    """Forget the first ``size`` buffered bytes (a bytearray drops its front without
    moving the rest) and let the transport read again if it paused for them."""
    del buffer[:size]
    reader._maybe_resume_transport()  # type: ignore[attr-defined]


async def _more(reader: asyncio.StreamReader, buffer: bytearray) -> None:
    """Wait until more data is buffered; IncompleteReadError if the client went away."""
    error = reader.exception()
    if error is not None:
        raise error
    if reader._eof:  # type: ignore[attr-defined]
        raise asyncio.IncompleteReadError(bytes(buffer), None)
    await reader._wait_for_data("read_data")  # type: ignore[attr-defined]


def unstuff(data: bytes, *, dot_lines: bool | None = None) -> bytes:
    """Remove the transparency dot of each line that starts with one (RFC 5321 4.5.2).

    ``dot_lines`` says whether a line after the first starts with a dot, when the caller
    already knows (the DATA reader does); None searches."""
    if data.startswith(b"."):
        data = data[1:]
    if dot_lines is None:
        dot_lines = has_dot_line(data)
    if dot_lines:
        data = data.replace(b"\r\n.", b"\r\n")
    return data


#: Bytes unstuffed per call in :func:`unstuff_yielding`: about 6 ms of dot lines.
UNSTUFF_SLICE = 1024 * 1024


async def unstuff_yielding(data: bytes, *, dot_lines: bool) -> bytes:
    """:func:`unstuff`, one :data:`UNSTUFF_SLICE` at a time with a loop turn in between.

    Each stuffed line costs the ``replace`` a match: a 16 MB body of ``..`` lines held
    the event loop 95 ms in one call, no other client served meanwhile (a client may send
    one such message after another; tests/reliability/test_sec_smtp_adversary.py). Each
    slice after the first starts at a CRLF, so no ``CRLF .`` is cut in two."""
    if not dot_lines or len(data) <= UNSTUFF_SLICE:
        return unstuff(data, dot_lines=dot_lines)
    start = 1 if data.startswith(b".") else 0
    pieces: list[bytes] = []
    while start < len(data):
        end = data.find(b"\r\n", start + UNSTUFF_SLICE)
        if end < 0:
            end = len(data)
        pieces.append(data[start:end].replace(b"\r\n.", b"\r\n"))
        start = end
        if start < len(data):
            await asyncio.sleep(0)
    return b"".join(pieces)
