"""Reply formatting: the single-line fast path gives the bytes the general path gives."""

from __future__ import annotations

import pytest

from kumocore.reception.smtp.protocol import format_reply


@pytest.mark.parametrize(
    ("code", "text", "wire"),
    [
        (250, "2.1.0 OK", b"250 2.1.0 OK\r\n"),
        (250, "OK ids=a b", b"250 OK ids=a b\r\n"),
        (550, "", b"550 \r\n"),
        (250, "h\u00e9llo", "250 h\u00e9llo\r\n".encode()),
        (250, "ehlo.example\nPIPELINING\n8BITMIME", b"250-ehlo.example\r\n250-PIPELINING\r\n"
         b"250 8BITMIME\r\n"),
        (421, "line one\r\nline two", b"421-line one\r\n421 line two\r\n"),
        (451, "bare\rcr", b"451 barecr\r\n"),
    ],
)
def test_replies_are_formatted_line_by_line(code: int, text: str, wire: bytes) -> None:
    assert format_reply(code, text) == wire
