"""Whether a message has a line that starts with a full stop: SMTP's transparency dots.

Reception removes one dot from each such line (RFC 5321 4.5.2) and delivery adds one; both
first ask whether there is any such line at all, which for most bodies is "no". The search
for ``CRLF .`` goes by way of the full stops (:class:`~kumocore.mail.sparse.SparsePattern`:
``memchr`` for each one, ``re`` for spans where they come thick).
"""

from __future__ import annotations

from kumocore.mail.sparse import Buffer, SparsePattern

__all__ = ["find_dot_line", "has_dot_line"]

_DOT_LINE = SparsePattern(b"\r\n.", b".")


def has_dot_line(data: Buffer) -> bool:
    """Whether ``CRLF .`` occurs in ``data`` (a line after the first starts with a dot).

    The first line is the caller's to check (``data.startswith(b".")``)."""
    return _DOT_LINE.find(data) >= 0


def find_dot_line(data: Buffer, start: int = 0) -> int:
    """The index of the CR of the first ``CRLF .`` at or after ``start``, or -1.

    The DATA reader walks the dot lines of a stream buffer with it to find the end of data
    (``CRLF . CRLF`` is the first dot line whose dot stands alone)."""
    return _DOT_LINE.find(data, start)
