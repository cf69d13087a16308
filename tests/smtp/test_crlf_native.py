"""The C scan (``kumocore/mail/_crlfscan.c``) gives the definitions' answers exactly, for
the line endings and the line lengths, at every offset of its sixteen-octet blocks; and
reception's line scan uses it for bodies of every size when it was built."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kumocore.mail import crlf
from kumocore.reception.smtp.data import check_line_endings, has_long_line, scan_lines

scan = crlf.crlf_scan_native

# Octets that matter (CR, LF) often, among some that do not; long runs cross blocks.
PARTS = st.lists(st.sampled_from(
    [b"\r", b"\n", b"\r\n", b"\r\n", b"a", b".", b"\x00", b"\xff", b"x" * 15, b"y" * 17]))


def native(data: bytes | bytearray | memoryview, limit: int) -> tuple[bool, bool]:
    if scan is None:
        pytest.skip("the C extension was not built (no C compiler)")
    return scan(data, limit)


def test_the_c_scan_is_built_where_there_is_a_c_compiler() -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine: the pure-Python fallback runs")
    assert scan is not None, "setup.py's optional extension failed to build"


@given(PARTS, st.integers(min_value=0, max_value=40))
def test_the_c_scan_agrees_with_both_definitions(parts: list[bytes], limit: int) -> None:
    data = b"".join(parts)
    clean, short_lines = native(data, limit)
    assert clean == check_line_endings(data), data
    if clean:
        assert short_lines == (not has_long_line(data, limit)), (data, limit)


@pytest.mark.parametrize("at", range(0, 40))
@pytest.mark.parametrize("stray", [b"\r", b"\n", b"\r\r\n", b"\n\n"])
def test_a_stray_cr_or_lf_at_any_offset_of_a_block_is_found(at: int, stray: bytes) -> None:
    body = b"line of the body\r\n" * 4  # 72 octets: CRLF pairs across block borders
    broken = body[:at] + stray + body[at:]
    assert not check_line_endings(broken)
    assert native(broken, 998) == (False, False)
    assert native(body, 998) == (True, True)


@pytest.mark.parametrize("offset", range(0, 33))
@pytest.mark.parametrize("limit", [1, 15, 16, 17, 998])
def test_a_line_of_exactly_the_limit_passes_and_one_more_does_not(offset: int,
                                                                  limit: int) -> None:
    lead = b"\r\n".join([b"z"] * (offset // 3)) + b"\r\n" if offset >= 3 else b""
    for length, over in ((limit, False), (limit + 1, True)):
        data = lead + b"x" * length + b"\r\ne\r\n"
        assert native(data, limit) == (True, not over), (offset, limit, length)
        unterminated = lead + b"y" * length  # a last line without CRLF counts too
        assert native(unterminated, limit) == (True, not over), (offset, limit, length)


def test_a_cr_ending_the_data_or_an_lf_starting_it_is_not_clean() -> None:
    assert native(b"", 998) == (True, True)
    assert native(b"x" * 31 + b"\r", 998) == (False, False)
    assert native(b"\n" + b"x" * 31, 998) == (False, False)
    assert native(b"x" * 15 + b"\r" + b"\n" + b"x" * 15, 998) == (True, True)


def test_any_buffer_is_read_and_anything_else_is_a_type_error() -> None:
    data = b"a line\r\n" * 10
    assert native(bytearray(data), 998) == native(memoryview(data), 998) == (True, True)
    if scan is None:
        return
    with pytest.raises(TypeError):
        scan("a str\r\n", 998)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        scan(data)  # type: ignore[call-arg]


def test_reception_takes_the_c_scan_for_small_and_large_bodies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if scan is None:
        pytest.skip("the C extension was not built (no C compiler)")
    calls: list[int] = []

    def counting(data: bytes, limit: int) -> tuple[bool, bool]:
        calls.append(len(data))
        assert scan is not None
        return scan(data, limit)

    def refuse(data: bytes, limit: int) -> tuple[bool, bool]:
        raise AssertionError("the NumPy fallback ran although the C scan is built")

    monkeypatch.setattr(crlf, "crlf_scan_native", counting)
    monkeypatch.setattr(crlf, "crlf_scan_vectorised", refuse)
    small = b"short\r\nlines\r\n"
    large = b"a line of a large body\r\n" * 2000
    assert scan_lines(small, 998) == (False, True)
    assert scan_lines(large + b"x" * 999 + b"\r\n", 998) == (True, True)
    assert scan_lines(large + b"bare\n", 998) == (False, False)
    assert calls == [len(small), len(large) + 1001, len(large) + 5]
