from __future__ import annotations

import pytest

from kumocore.mail.headers import (
    HeaderBlock,
    HeaderError,
    append_header,
    format_header,
    prepend_header,
    remove_headers,
    split_header_block,
)
from kumocore.mail.rfc2047 import decode_rfc2047

MSG = (
    b"Received: from a by b;\r\n\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Received: from c by d\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus\r\n  =?utf-8?b?S8O2bG4=?=\r\n"
    b"X-Folded: one\r\n two\r\n"
    b"\r\n"
    b"Body: not a header\r\n"
)


def test_folded_headers_are_unfolded_and_each_white_space_run_read_as_one_space() -> None:
    # As KumoMTA reads an unstructured header: a fold and the tab after it are one space
    # (its mail_auth helper's self-test compares an unfolded Authentication-Results).
    block = HeaderBlock(MSG)
    assert block.get_first("x-folded").value == "one two"  # type: ignore[union-attr]
    received = block.get_first("RECEIVED")
    assert received is not None
    assert received.value == "from a by b; Mon, 1 Jan 2024 00:00:00 +0000"
    assert received.raw_value == "from a by b;\tMon, 1 Jan 2024 00:00:00 +0000"


def test_rfc2047_words_are_decoded_and_whitespace_between_them_dropped() -> None:
    assert HeaderBlock(MSG).get_first("subject").value == "Grüße aus Köln"  # type: ignore[union-attr]
    assert decode_rfc2047("=?utf-8?q?a?= =?utf-8?q?b?=") == "ab"
    assert decode_rfc2047("x =?iso-8859-1?q?caf=E9?= y") == "x café y"


def test_rfc2047_joins_a_character_split_across_two_words() -> None:
    assert decode_rfc2047("=?utf-8?b?ww==?= =?utf-8?b?qQ==?=") == "é"


def test_undecodable_encoded_words_are_left_as_written() -> None:
    text = "=?x-unknown?q?abc?= and =?utf-8?b?!!!?="
    assert decode_rfc2047(text) == text


def test_duplicate_headers_are_all_returned_in_order() -> None:
    block = HeaderBlock(MSG)
    assert [f.value[:11] for f in block.get_all("received")] == ["from a by b", "from c by d"]
    assert block.get_all("missing") == []
    assert block.get_first("missing") is None


def test_header_block_ends_at_first_empty_line_and_body_is_not_parsed() -> None:
    block = HeaderBlock(MSG)
    assert [f.name for f in block.fields] == ["Received", "Received", "Subject", "X-Folded"]
    assert MSG[block.body_start :] == b"Body: not a header\r\n"


def test_lf_only_messages_are_tolerated() -> None:
    data = b"Subject: hi\n there\nTo: a@b\n\nbody\n"
    block = HeaderBlock(data)
    assert block.get_first("subject").value == "hi there"  # type: ignore[union-attr]
    assert split_header_block(data) == (data.index(b"\n\n") + 1, data.index(b"\n\n") + 2)
    assert append_header(data, "X-A", "1") == b"Subject: hi\n there\nTo: a@b\nX-A: 1\n\nbody\n"


def test_message_without_body_is_all_headers() -> None:
    assert [f.name for f in HeaderBlock(b"A: 1\r\nB: 2").fields] == ["A", "B"]
    assert append_header(b"A: 1", "B", "2") == b"A: 1\r\nB: 2\r\n"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b" leading continuation\r\nA: 1\r\n\r\n", "continuation of nothing"),
        (b"A: 1\r\nthis is not a header\r\n\r\nbody", "malformed header line 2"),
        (b"From someone Mon Jan 1\r\nA: 1\r\n\r\n", "malformed header line 1"),
        (b"Bad Name: x\r\n\r\n", "malformed header line 1"),
    ],
)
def test_malformed_header_lines_raise_header_error_naming_the_line(
    data: bytes, problem: str
) -> None:
    with pytest.raises(HeaderError, match=problem):
        HeaderBlock(data)


def test_eight_bit_headers_are_read_as_utf8_or_latin1() -> None:
    assert HeaderBlock("S: Grüße\r\n\r\n".encode()).fields[0].value == "Grüße"
    assert HeaderBlock("S: Grüße\r\n\r\n".encode("latin-1")).fields[0].value == "Grüße"


def test_prepend_and_append_place_headers_around_the_block() -> None:
    data = b"A: 1\r\nB: 2\r\n\r\nbody"
    assert prepend_header(data, "X", "y") == b"X: y\r\nA: 1\r\nB: 2\r\n\r\nbody"
    assert append_header(data, "X", "y") == b"A: 1\r\nB: 2\r\nX: y\r\n\r\nbody"


def test_header_values_with_line_breaks_are_refused_unless_encoded() -> None:
    with pytest.raises(HeaderError, match="line break"):
        format_header("X-Inject", "a\r\nBcc: victim@example.com")
    encoded = format_header("X-Inject", "a\r\nBcc: victim@example.com", encode=True)
    assert encoded == b"X-Inject: a Bcc: victim@example.com\r\n"


@pytest.mark.parametrize("name", ["", "Bad Name", "Colon:", "Ünï"])
def test_invalid_header_names_are_refused(name: str) -> None:
    with pytest.raises(HeaderError, match="invalid header name"):
        format_header(name, "x")


@pytest.mark.parametrize(
    "value",
    [
        "Grüße aus Köln, ein sehr langer Betreff mit vielen Umlauten äöü und noch mehr Text",
        "日本語のテキスト" * 10,
        "a plain ascii subject that is long enough to need folding somewhere in the middle ok",
    ],
)
def test_encoded_headers_fold_under_78_columns_and_decode_back(value: str) -> None:
    line = format_header("Subject", value, encode=True)
    assert line.isascii()
    assert all(len(part) <= 78 for part in line.split(b"\r\n"))
    assert HeaderBlock(line + b"\r\n").fields[0].value == value


def test_remove_headers_removes_every_folded_occurrence_and_keeps_the_rest_verbatim() -> None:
    out = remove_headers(MSG, "received")
    assert out == MSG[MSG.index(b"Subject:") :]
    assert remove_headers(MSG, "absent") is MSG
