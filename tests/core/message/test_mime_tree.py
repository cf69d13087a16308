"""The MIME tree under ``msg:parse_mime()`` and ``kumo.mimepart``: exact round trips, body
decoding, KumoMTA's transfer encodings, and the bounds on hostile input."""

from __future__ import annotations

import time

import pytest

from kumocore.mail import mime_codec
from kumocore.mail.mime_tree import (
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_PARTS,
    MimeStructureError,
)
from kumocore.mail.mime_view import parse_mime

ALTERNATIVE = (
    b"Subject: This is a test email\r\n"
    b"Content-Type: multipart/alternative; boundary=foobar\r\n"
    b"Mime-Version: 1.0\r\n\r\n"
    b"--foobar\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"This is the plaintext version, in utf-8. Proof by Euro: =E2=82=AC\r\n"
    b"--foobar\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"PGh0bWw+PGJvZHk+VGhpcyBpcyB0aGUgPGI+SFRNTDwvYj4gdmVyc2lvbiwgaW4g \r\n"
    b"dXMtYXNjaWkuIFByb29mIGJ5IEV1cm86ICZldXJvOzwvYm9keT48L2h0bWw+Cg== \r\n"
    b"--foobar--\r\nAfter the final boundary stuff gets ignored.\r\n"
)


@pytest.mark.parametrize(
    "data",
    [
        ALTERNATIVE,
        ALTERNATIVE.replace(b"\r\n", b"\n"),
        ALTERNATIVE.replace(b"utf-8. Proof", b"utf-8.\nProof"),  # one bare LF in a body
        ALTERNATIVE.replace(b"Version: 1.0\r\n\r\n", b"Version: 1.0\r\n\r\nA preamble.\r\n"),
        b"Subject:  two spaces\r\nX-Folded: a\r\n\tb\r\nno colon here\r\n\r\nbody",
    ],
)
def test_an_unchanged_tree_is_written_back_byte_for_byte(data: bytes) -> None:
    assert parse_mime(data).to_bytes() == data


def test_bodies_are_transfer_and_charset_decoded_keeping_the_line_break() -> None:
    text, html = parse_mime(ALTERNATIVE).children
    assert text.body == "This is the plaintext version, in utf-8. Proof by Euro: €\r\n"
    assert html.body == (
        "<html><body>This is the <b>HTML</b> version, in us-ascii. "
        "Proof by Euro: &euro;</body></html>\n"
    )
    assert [text.id, html.id] == ["0", "1"]


def test_binary_part_body_is_bytes_and_undecodable_text_falls_back_to_bytes() -> None:
    part = parse_mime(
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n"
    )
    assert part.body == b"%PDF"
    latin = parse_mime(b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9")
    assert latin.body == "café"
    assert parse_mime(b"Content-Type: text/plain\r\n\r\n\xff\xfe").body == b"\xff\xfe"


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("X" * 76, "X" * 76),
        ("X" * 77, "X" * 75 + "=\r\nXX"),
        ("X" * 73 + "\0Y", "X" * 73 + "=\r\n=00Y"),
        ("X" * 76 + "\0Y", "X" * 75 + "=\r\nX=00Y"),
        ("a\r\r\nb", "a=0D\r\nb"),
        ("lone\nlf", "lone=0Alf"),
        ("trailing  \r\nspace", "trailing =20\r\nspace"),
        ("X" * 75 + "\t", "X" * 75 + "=\r\n=09"),
    ],
)
def test_quoted_printable_lines_stay_within_76_columns(raw: str, encoded: str) -> None:
    assert mime_codec.qp_encode(raw.encode()) == encoded.encode()
    assert mime_codec.qp_decode(encoded.encode()) == raw.encode()


def test_header_words_and_wrapping_follow_kumomta() -> None:
    long = (
        "hello, I am a line that is this long, or maybe a little bit longer than this, "
        "and that should get wrapped by the encoder"
    )
    assert mime_codec.header_qp_encode(long) == (
        "=?UTF-8?q?hello,_I_am_a_line_that_is_this_long,_or_maybe_a_little_bit_?=\r\n"
        "\t=?UTF-8?q?longer_than_this,_and_that_should_get_wrapped_by_the_encoder?="
    )
    assert mime_codec.wrap_header("A" * 1800 + " b") == "A" * 900 + "\r\n\t" + "A" * 900 + "\r\n\tb"


def _nested(depth: int) -> bytes:
    body = b"\r\nleaf\r\n"
    for level in range(depth):
        boundary = f"B{level}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="'
            + boundary
            + b'"\r\n\r\n--'
            + boundary
            + b"\r\n"
            + body
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )
    return b"Subject: x\r\n" + body


def test_nesting_up_to_the_limit_parses_and_beyond_is_refused_quickly() -> None:
    deepest = parse_mime(_nested(MAX_DEPTH)).walk()[-1]
    assert deepest.body == "leaf\r\n\r\n" and deepest.id.count(".") == MAX_DEPTH - 1
    started = time.monotonic()
    with pytest.raises(MimeStructureError, match=f"deeper than {MAX_DEPTH} levels"):
        parse_mime(_nested(5000))
    assert time.monotonic() - started < 2


def _many_parts(count: int) -> bytes:
    return (
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        + b"--B\r\n\r\nx\r\n" * count
        + b"--B--\r\n"
    )


def test_parts_up_to_the_limit_parse_and_beyond_is_refused() -> None:
    assert len(parse_mime(_many_parts(MAX_PARTS - 1)).children) == MAX_PARTS - 1
    started = time.monotonic()
    with pytest.raises(MimeStructureError, match=f"more than {MAX_PARTS} MIME parts"):
        parse_mime(_many_parts(200_000))
    assert time.monotonic() - started < 2


def test_header_fields_beyond_the_limit_are_refused() -> None:
    assert len(parse_mime(b"a: b\r\n" * MAX_HEADERS + b"\r\n").headers) == MAX_HEADERS
    started = time.monotonic()
    with pytest.raises(MimeStructureError, match=f"more than {MAX_HEADERS} header fields"):
        parse_mime(b"a: b\r\n" * 1_000_000 + b"\r\nbody")
    assert time.monotonic() - started < 3


def test_a_header_field_beyond_the_length_limit_is_refused() -> None:
    addresses = (MAX_HEADER_BYTES - 10) // len(b"a@b.c, ")
    fits = parse_mime(b"To: " + b"a@b.c, " * addresses + b"\r\n\r\nbody")
    started = time.monotonic()
    assert len(fits.headers.to()) == addresses  # the costliest reading, at the limit
    assert time.monotonic() - started < 3
    with pytest.raises(MimeStructureError, match="header field longer than"):
        parse_mime(b"Subject: " + b"x\r\n " * (MAX_HEADER_BYTES // 3) + b"\r\n\r\nbody")
