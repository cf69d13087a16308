"""``has_dot_line`` (the search for lines starting with a dot, memchr first, then ``re``
where full stops come thick) gives exactly the answer of ``b"\\r\\n." in data``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kumocore.reception.smtp.dots import find_dot_line, has_dot_line
from tests.support.sparse import tiny_spans

_PIECES = st.lists(st.sampled_from([b"a", b".", b"..", b"\r", b"\n", b"\r\n", b"x.y",
                                    b"\r\n.", b".\r\n", b"\n.", b"\r."]),
                   max_size=80).map(b"".join)


@given(_PIECES)
@settings(max_examples=500, deadline=None)
def test_agrees_with_a_plain_search_on_arbitrary_bytes(data: bytes) -> None:
    assert has_dot_line(data) == (b"\r\n." in data)


@given(_PIECES)
@settings(max_examples=500, deadline=None)
def test_agrees_with_a_plain_search_when_re_takes_over_after_few_dots(data: bytes) -> None:
    # Tiny spans put every boundary case (a CRLF . straddling the end of a span handed to
    # re, a dot right after it) within reach of short inputs.
    with tiny_spans(5):
        assert has_dot_line(data) == (b"\r\n." in data)


def _prose(lines: int) -> bytes:
    return b"".join(b"Line %d. Ends with a full stop. Another one." % i + b"\r\n"
                    for i in range(lines))


def test_finds_a_dot_line_at_every_offset_of_a_dense_text() -> None:
    text = _prose(600)  # full stops every few bytes: the re spans take over
    assert not has_dot_line(text)
    starts = [i + 2 for i in range(len(text) - 1) if text[i:i + 2] == b"\r\n"]
    for start in starts[:-1]:
        marked = text[:start] + b"." + text[start:]
        assert has_dot_line(marked), start


def test_finds_a_dot_line_behind_a_long_run_without_full_stops() -> None:
    base64ish = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw==\r\n" * 3000
    assert not has_dot_line(base64ish)
    assert has_dot_line(base64ish + b".hidden\r\n")
    assert has_dot_line(b"Hello.\r\n" + base64ish + b"..\r\n")


def test_the_first_line_is_left_to_the_caller() -> None:
    assert not has_dot_line(b".starts the data\r\nthen plain")
    assert has_dot_line(b"\r\n.")
    assert not has_dot_line(b"") and not has_dot_line(b".") and not has_dot_line(b"\n.")


@given(_PIECES, st.integers(min_value=0, max_value=90))
@settings(max_examples=500, deadline=None)
def test_find_dot_line_gives_the_first_crlf_dot_from_a_start_as_find_does(
    data: bytes, start: int
) -> None:
    with tiny_spans(5):
        assert find_dot_line(data, start) == data.find(b"\r\n.", start)
        assert find_dot_line(bytearray(data), start) == data.find(b"\r\n.", start)
