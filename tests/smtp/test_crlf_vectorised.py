"""The vectorised CRLF test (NumPy) gives the plain definition's answer, its line-length
filter never clears a body with a long line, and reception's line scan uses both for large
bodies (tests/smtp/test_data.py runs the scan's own tests through both paths)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kumocore.mail import crlf
from kumocore.reception.smtp.data import check_line_endings, has_long_line, scan_lines

pytest.importorskip("numpy")  # the `fast` extra; `make test` installs it

scan = crlf.crlf_scan_vectorised


def vectorised(data: bytes) -> bool:
    """The scan's answer for the line endings (its first half)."""
    assert scan is not None
    return scan(data, 998)[0]

# Octets that matter (CR, LF) often, among a few that do not.
OCTETS = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b".", b"\x00", b"\xff"]))


def test_numpy_installed_means_the_vectorised_test_is_used() -> None:
    assert scan is not None


@given(OCTETS)
def test_vectorised_crlf_test_agrees_with_the_definition(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert vectorised(data) == check_line_endings(data), data


@pytest.mark.parametrize(
    "data, clean",
    [(b"", True), (b"\r\n", True), (b"\n", False), (b"\r", False), (b"a\r", False),
     (b"\na", False), (b"\n\r", False), (b"\r\r\n", False), (b"\r\n\n", False),
     (b"x" * 70_000 + b"\r\n", True), (b"x" * 70_000 + b"\n", False)],
)
def test_vectorised_crlf_test_at_the_edges(data: bytes, clean: bool) -> None:
    assert vectorised(data) is clean


def test_one_bare_cr_or_lf_anywhere_in_a_large_clean_body_is_found() -> None:
    body = b"".join(b"line %06d of a long message body\r\n" % n for n in range(4000))
    assert vectorised(body)
    for at in (0, 1, 37, len(body) // 2, len(body) - 2, len(body)):
        for stray in (b"\n", b"\r"):
            broken = body[:at] + stray + body[at:]
            assert not check_line_endings(broken)
            assert not vectorised(broken), (at, stray)


def test_a_large_body_takes_the_vectorised_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting(data: bytes, limit: int) -> tuple[bool, bool]:
        calls.append(len(data))
        assert scan is not None
        return scan(data, limit)

    monkeypatch.setattr(crlf, "crlf_scan_vectorised", counting)
    monkeypatch.setattr(crlf, "crlf_scan_native", None)  # the fallback, as without a compiler
    body = b"a line of a large body\r\n" * 2000
    assert scan_lines(body, 998) == (False, True)
    assert scan_lines(body + b"x" * 999 + b"\r\n", 998) == (True, True)
    assert scan_lines(body + b"bare\n", 998) == (False, False)
    assert len(calls) == 3


@given(OCTETS, st.integers(min_value=0, max_value=12))
def test_the_line_filter_never_clears_a_clean_body_with_a_line_over_the_limit(
    parts: list[bytes], limit: int
) -> None:
    assert scan is not None
    data = b"".join(parts)
    clean, short_lines = scan(data, limit)
    assert clean == check_line_endings(data)
    if short_lines:
        assert clean
        assert not has_long_line(data, limit), (data, limit)


@pytest.mark.parametrize("limit", [998, 77, 10, 1])
def test_a_line_one_over_the_limit_is_found_at_every_offset(limit: int) -> None:
    assert scan is not None
    short = b"".join(b"%d\r\n" % (n % 10) for n in range(3 * limit + 40))
    for at in range(0, len(short) + 1, 3):  # after every short line
        for length, over in ((limit, False), (limit + 1, True)):
            data = short[:at] + b"x" * length + b"\r\n" + short[at:]
            clean, short_lines = scan(data, limit)
            assert clean
            if over:
                assert not short_lines, (limit, at)
            assert scan_lines(data, limit) == (over, True), (limit, at, length)
        tail = short[:at] + b"y" * (limit + 1)  # an unterminated last line counts too
        assert has_long_line(tail, limit)
        assert not scan(tail, limit)[1], (limit, at)


def test_a_body_of_ordinary_lines_is_cleared_without_the_exact_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kumocore.reception.smtp import lines

    def refuse(data: bytes, limit: int) -> bool:
        raise AssertionError("the exact walk ran for a body the filter clears")

    monkeypatch.setattr(lines, "_crlf_line_over", refuse)
    monkeypatch.setattr(crlf, "crlf_scan_native", None)  # the NumPy filter is under test
    base64_lines = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
    assert scan_lines(base64_lines * 1400, 998) == (False, True)


def test_small_bodies_keep_the_plain_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes, limit: int) -> tuple[bool, bool]:
        raise AssertionError("a body under VECTOR_MIN took the vectorised test")

    monkeypatch.setattr(crlf, "crlf_scan_vectorised", refuse)
    monkeypatch.setattr(crlf, "crlf_scan_native", None)  # the fallback, as without a compiler
    body = b"x" * (crlf.VECTOR_MIN - 3) + b"\r\n"
    assert scan_lines(body, 998) == (True, True)
    assert scan_lines(b"short\r\nlines\r\n", 998) == (False, True)
