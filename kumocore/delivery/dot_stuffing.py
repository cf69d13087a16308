"""Dot-stuffing a body for DATA (RFC 5321 4.5.2), as few passes and copies as it allows.

Every bare CR or LF of a body becomes CRLF on the way out, each line starting with a full
stop gets another, and ``CRLF . CRLF`` ends it. What reception already knows about the
body (CRLF-clean, no line starting with a dot) spares the passes that would find nothing.

A large body that does need work is done a slice at a time with a turn of the event loop
between slices (:func:`dot_stuffed_in_slices`): one ``replace`` over 16 MB of dot lines
held the loop 148 ms, no other session served meanwhile.
"""

from __future__ import annotations

import asyncio

from kumocore.reception.smtp.dots import has_dot_line

#: Bytes of body stuffed between two turns of the event loop: at most about 5 ms of work,
#: for a slice made only of line ends and dots to double.
STUFF_SLICE = 256 << 10


def dot_stuff(data: bytes, *, crlf_clean: bool = False) -> bytes:
    """CRLF-normalise ``data``, double leading dots, and append the ``.`` terminator.

    Every bare CR or LF becomes CRLF, so a smuggling payload that reached the spool can
    never be passed on as a second end-of-data. ``crlf_clean`` says the caller knows that
    every CR and LF in ``data`` is already part of a CRLF pair (reception checked it, see
    :attr:`kumocore.mail.message.Message.crlf_clean`): normalising would change nothing, so it
    is skipped (``splitlines`` + ``join`` are about two thirds of the cost at 100 KB).
    The bytes sent are the same either way; a wrong ``True`` would pass bare line ends on.
    """
    body, terminator = dot_stuffed(data, crlf_clean=crlf_clean)
    return body + terminator


def dot_stuffed(
    data: bytes, *, crlf_clean: bool = False, head: bytes = b"", no_dot_lines: bool = False
) -> tuple[bytes, ...]:
    """:func:`dot_stuff` of ``head + data`` in pieces, to be written with ``writelines``:
    a body with no line to stuff is then sent as it is, without the copy that appending
    the terminator to it would make (100 KB per message and recipient).

    ``head`` is a message's own header lines in front of a body it shares with other
    recipients (:attr:`kumocore.mail.message.Message.head`): given apart, the two are not
    joined into a copy of the body for each recipient. ``crlf_clean`` speaks for both.

    ``no_dot_lines`` says that no line of ``data`` after its first starts with a full stop
    (reception's DATA reader saw none): the search for lines to stuff, a pass over the
    whole body, is skipped. It speaks for ``data`` alone, and only where ``data`` is sent
    as it is (CRLF-clean); the small head is always searched.
    """
    if head:
        if not (crlf_clean and data and head.endswith(b"\r\n")):
            return dot_stuffed(head + data, crlf_clean=crlf_clean)
        # After the head's final CRLF the body's first line is a line like any other:
        # stuffing each part on its own (the body's leading dot included) is the same.
        return _stuff_clean(head)[0], *_stuff_clean(data, no_dot_lines)
    if crlf_clean:
        return _stuff_clean(data, no_dot_lines)
    # bytes.splitlines breaks at CRLF, CR and LF (and nothing else): exactly where
    # ``re.sub(rb"\r\n|\r|\n", b"\r\n", data)`` would. Joining its lines with CRLF
    # normalises in one pass, cheaper than the three counts that would tell whether
    # normalising is needed (about 3x faster at 50 KB).
    body = b"\r\n".join(data.splitlines())
    if body.startswith(b"."):
        body = b"." + body
    if has_dot_line(body):
        body = body.replace(b"\r\n.", b"\r\n..")
    return body, b"\r\n.\r\n"


def _stuff_clean(data: bytes, no_dot_lines: bool = False) -> tuple[bytes, bytes]:
    """:func:`dot_stuffed` of CRLF-clean ``data``, without the normalising pass.

    The slow path drops a final CRLF (``splitlines`` leaves no empty last line) and then
    appends ``CRLF . CRLF``: for data ending in CRLF that is just ``. CRLF`` more; the
    final CRLF is never followed by a dot, so doubling dots before or after dropping it
    gives the same bytes.
    """
    if data.startswith(b"."):
        data = b"." + data
    if not no_dot_lines and has_dot_line(data):
        data = data.replace(b"\r\n.", b"\r\n..")
    return data, (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")


async def dot_stuffed_in_slices(
    data: bytes, *, crlf_clean: bool = False, head: bytes = b"", no_dot_lines: bool = False,
    slice_size: int = STUFF_SLICE,
) -> tuple[bytes, ...]:
    """:func:`dot_stuffed`, the body worked on ``slice_size`` bytes at a time with a loop
    turn in between when it is large and has work to do (the same bytes in more pieces).

    Slices end just after an LF, so every slice after the first starts a line (its leading
    dot is a dot line) and no CRLF is cut in two; a line longer than a slice stays whole."""
    if len(data) <= slice_size or (crlf_clean and no_dot_lines):
        return dot_stuffed(data, crlf_clean=crlf_clean, head=head, no_dot_lines=no_dot_lines)
    pieces: list[bytes] = []
    if head:
        if crlf_clean and head.endswith(b"\r\n"):
            pieces.append(_stuff_clean(head)[0])
        else:
            data = head + data  # the head's last line goes on in the body: stuff them together
    start = 0
    while True:
        end = data.find(b"\n", start + slice_size - 1) + 1
        if end <= 0 or end >= len(data):
            pieces += dot_stuffed(data[start:], crlf_clean=crlf_clean)
            return tuple(pieces)
        pieces.append(_stuffed_lines(data[start:end], crlf_clean))
        start = end
        await asyncio.sleep(0)


def _stuffed_lines(lines: bytes, crlf_clean: bool) -> bytes:
    """Whole lines (ending with their line end) stuffed, their line ends made CRLF."""
    if not crlf_clean:
        # Each CRLF, CR and LF once to LF, then to CRLF: three passes in C, no object per
        # line (splitlines made one each: 35 ms for a slice of 1 MiB of one-dot lines).
        lines = lines.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if lines.startswith(b"."):
        lines = b"." + lines
    if has_dot_line(lines):
        lines = lines.replace(b"\r\n.", b"\r\n..")
    return lines
