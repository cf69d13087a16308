"""Searching a message for a short byte pattern that most messages lack, at memory speed.

Reception and delivery ask whether a line starts with a dot (``CRLF .``), DKIM's relaxed
body canonicalisation whether there is a run of spaces (two spaces) or a space before a
line end (``SP CRLF``). For most bodies the answer is "no", and ``re``'s search for such
a pattern stops at every line or word: about 0.3-0.4 ns per byte, 30-40 us for a 100 KB
message, several per cent of a worker's time at that size.

:meth:`SparsePattern.find` asks ``bytes.find`` for the next *anchor* (one byte of the
pattern: the full stop, the space), which is ``memchr`` (vectorised, a few microseconds
for 100 KB), and compares the pattern around it. Base64 attachments hold neither full
stops nor spaces. Prose holds them every few bytes; there, after
:data:`ANCHORS_PER_SPAN` anchors in a row that start no match, the next span of the text
is left to ``re``: :data:`REGEX_SPAN` bytes, twice as many each time the anchors still come
thick, so dense text costs about what ``re`` alone did. Texts shorter than :data:`SMALL`
go to ``re`` at once (a few ``find`` calls cost more than its search).
"""

from __future__ import annotations

import re

__all__ = ["ANCHORS_PER_SPAN", "REGEX_SPAN", "SMALL", "Buffer", "SparsePattern"]

#: Anchors looked at one by one before a span of the text is left to ``re``.
ANCHORS_PER_SPAN = 4
#: Bytes searched by ``re`` the first time the anchors come thick (then doubled).
REGEX_SPAN = 4096
#: Texts up to this size are searched by ``re`` alone.
SMALL = 8192

#: What is searched: a message (``bytes``) or a stream's buffer (``bytearray``).
Buffer = bytes | bytearray


class SparsePattern:
    """A literal byte pattern, found by way of one of its bytes (the anchor)."""

    __slots__ = ("anchor", "lead", "pattern", "regex")

    def __init__(self, pattern: bytes, anchor: bytes) -> None:
        self.pattern = pattern
        self.anchor = anchor
        self.lead = pattern.index(anchor)  # bytes of the pattern before its anchor
        self.regex = re.compile(re.escape(pattern))

    def find(self, data: Buffer, start: int = 0) -> int:
        """The index of the first occurrence at or after ``start``, or -1 (``data.find``)."""
        if len(data) - start <= SMALL:
            found = self.regex.search(data, start)
            return -1 if found is None else found.start()
        pattern, anchor, lead = self.pattern, self.anchor, self.lead
        find = data.find
        at = find(anchor, start + lead)  # an occurrence's anchor lies at start + lead or later
        seen = 0
        span = REGEX_SPAN
        while at >= 0:
            if data.startswith(pattern, at - lead):
                return at - lead
            seen += 1
            if seen < ANCHORS_PER_SPAN:
                at = find(anchor, at + 1)
                continue
            seen = 0
            end = at + span
            span *= 2
            # Every occurrence whose anchor lies in (at, end) is inside this slice.
            found = self.regex.search(data, at + 1 - lead, end - 1 - lead + len(pattern))
            if found is not None:
                return found.start()
            at = find(anchor, end)
        return -1
