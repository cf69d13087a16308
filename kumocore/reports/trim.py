"""Cut a received ``multipart/report`` down to the parts its log records need.

The stdlib parser splits and decodes the whole message in single C calls that keep the GIL
for as long as they run: parsing a 20 MiB DSN on a worker thread still held the event loop
for over 100 ms. The records of a received report need only the report part
(``message/delivery-status``, ``message/feedback-report``: a few hundred bytes) and, for an
ARF complaint, the returned message (``original_message``, ``supplemental_trace``). So the
top-level MIME delimiters are found with ``bytes.find`` (C speed, no copies) and only those
parts, bounded, are handed to the parsers:

* a report part larger than :data:`MAX_REPORT_PART` makes the message "not a report";
* a returned message larger than :data:`MAX_RETURNED_PART` keeps only its header block
  (when that is at most :data:`MAX_PART_HEAD` and the part is not transfer-encoded) and
  is dropped otherwise;
* other parts (the human-readable text, anything else) are left out.

Owns which bytes of a received report get parsed. It does not own the parsing
(:mod:`kumocore.reports.rfc3464`, :mod:`kumocore.reports.rfc5965`) and is not used by the
policy's ``msg:parse_rfc3464()``, which parses the whole message as before.
"""

from __future__ import annotations

import email.policy
from email.message import Message
from email.parser import BytesHeaderParser

from kumocore.reports.report_fields import RETURNED_CONTENT
from kumocore.reports.rfc3464 import MAX_REPORT_PARTS

#: A report part (the machine-readable one) larger than this is refused as not a report.
MAX_REPORT_PART = 64 * 1024
#: A returned message larger than this is cut to its header block.
MAX_RETURNED_PART = 1024 * 1024
#: The message's header block is looked for this far (the listener's
#: ``max_header_block_size`` is 100 KiB by default).
MAX_MESSAGE_HEAD = 1024 * 1024
#: A part's header block, and a returned message's, are looked for this far.
MAX_PART_HEAD = 64 * 1024
#: Lines that start like a delimiter but are not one; past this many, not a report.
MAX_NEAR_MISSES = 1000

REPORT_CONTENT = (
    "message/delivery-status",
    "message/global-delivery-status",
    "message/feedback-report",
)
_IDENTITY = ("", "7bit", "8bit", "binary")


class NotAReport(ValueError):
    """The message cannot be a report whose parts fit the bounds above."""


def trim_report(data: bytes) -> bytes:
    """``data`` with only the bounded parts its report records need, as a message.

    Raises :class:`NotAReport` when the message head, the report part or the delimiter
    layout is past the bounds. A message that is not ``multipart/report`` (or has no
    boundary) comes back as its head alone, which the parsers refuse as before.
    """
    body_start = _head_end(data, 0, MAX_MESSAGE_HEAD)
    if body_start < 0:
        raise NotAReport(f"no header block end in the first {MAX_MESSAGE_HEAD} bytes")
    head = _headers(data[:body_start])
    boundary = head.get_boundary()
    if head.get_content_type() != "multipart/report" or not boundary:
        return data[:body_start]
    delimiter = b"--" + boundary.encode("ascii", "surrogateescape")
    newline = b"\r\n" if data[body_start - 2 : body_start] == b"\r\n" else b"\n"
    kept = [data[:body_start]]
    for start, end in _parts(data, delimiter, body_start):
        part = _keep(data, start, end)
        if part is not None:
            kept += [delimiter, newline, part, newline]
    kept += [delimiter, b"--", newline]
    return b"".join(kept)


def _parts(data: bytes, delimiter: bytes, body_start: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the first top-level parts: from after a delimiter line to
    before the line break that starts the next one (RFC 2046: that break is the
    delimiter's). A part the message never closes runs to its end."""
    parts: list[tuple[int, int]] = []
    # The blank line ends with a break: a delimiter right at the body start is found too.
    found = _delimiter(data, delimiter, body_start - 1)
    while found is not None and len(parts) < MAX_REPORT_PARTS:
        _, line_end, closing = found
        if closing:
            break
        found = _delimiter(data, delimiter, line_end - 1)
        parts.append((line_end, len(data) if found is None else found[0]))
    return parts


def _delimiter(data: bytes, delimiter: bytes, pos: int) -> tuple[int, int, bool] | None:
    """The next delimiter line whose leading break is at or after ``pos``: where that
    break starts (its CR included), where the line ends, and whether it closes."""
    needle = b"\n" + delimiter
    misses = 0
    at = data.find(needle, pos)
    while at >= 0:
        after = at + len(needle)
        closing = data[after : after + 2] == b"--"
        line_end = _padding_end(data, after + 2 * closing)
        if line_end >= 0:
            return (at - 1 if data[at - 1 : at] == b"\r" else at), line_end, closing
        misses += 1  # "--boundary-more": another boundary that starts the same way
        if misses > MAX_NEAR_MISSES:
            raise NotAReport("too many lines that look like a MIME delimiter")
        at = data.find(needle, at + 1)
    return None


def _padding_end(data: bytes, start: int, most: int = 256) -> int:
    """Where the line at ``start`` ends (its break included) if it holds nothing but
    transport padding (spaces, tabs: at most ``most``); -1 if it holds anything else.
    Only a window is looked at, so that a long line that merely starts like a delimiter
    costs no copy of itself."""
    window = data[start : start + most + 2]
    rest = window.lstrip(b" \t")
    if rest.startswith(b"\n"):
        return start + len(window) - len(rest) + 1
    if rest.startswith(b"\r\n"):
        return start + len(window) - len(rest) + 2
    return len(data) if not rest and start + len(window) >= len(data) else -1


def _keep(data: bytes, start: int, end: int) -> bytes | None:
    """The bytes of the part ``data[start:end]`` worth parsing, None to leave it out."""
    head_end = _head_end(data, start, min(end, start + MAX_PART_HEAD))
    if head_end < 0:
        head_end = end if end - start <= MAX_PART_HEAD else -1
    if head_end < 0:
        return None  # no sane header block: the parsers would not know its type either
    headers = _headers(data[start:head_end])
    kind = headers.get_content_type()
    size = end - start
    if kind in REPORT_CONTENT:
        if size > MAX_REPORT_PART:
            raise NotAReport(f"{kind} part of {size} bytes (at most {MAX_REPORT_PART})")
        return data[start:end]
    if kind not in RETURNED_CONTENT:
        return None
    if size <= MAX_RETURNED_PART:
        return data[start:end]
    encoding = str(headers.get("content-transfer-encoding", "")).strip().lower()
    returned_end = _head_end(data, head_end, min(end, head_end + MAX_PART_HEAD))
    if encoding not in _IDENTITY or returned_end < 0:
        return None
    return data[start:returned_end]


def _head_end(data: bytes, start: int, limit: int) -> int:
    """Index just past the blank line that ends the header block at ``start`` (searched
    up to ``limit``); -1 when not found."""
    if data.startswith((b"\r\n", b"\n"), start, limit):
        return start + (2 if data[start : start + 1] == b"\r" else 1)
    ends = [
        (at, size)
        for at, size in (
            (data.find(b"\n\r\n", start, limit), 3),
            (data.find(b"\n\n", start, limit), 2),
        )
        if at >= 0
    ]
    if not ends:
        return -1
    at, size = min(ends)
    return at + size


def _headers(block: bytes) -> Message:
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)
