"""The DATA reader and its checks, fed byte patterns directly."""

from __future__ import annotations

import asyncio

import pytest

from kumocore.smtp.data import (
    DataTooBig,
    check_line_endings,
    fix_line_endings,
    has_long_line,
    read_data,
    unstuff,
)


async def feed(chunks: list[bytes], max_size: int = 1 << 20) -> tuple[bytes | DataTooBig, bytes]:
    """Run read_data over ``chunks`` arriving one by one; returns (result, what is left)."""
    reader = asyncio.StreamReader(limit=100)

    async def writer() -> None:
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        reader.feed_eof()

    task = asyncio.create_task(writer())
    result = await read_data(reader, max_size)
    await task
    return result, await reader.read()


async def test_data_ends_only_at_crlf_dot_crlf() -> None:
    result, rest = await feed([b"a\r\n.\n.b\r\n.\r\nNEXT\r\n"])
    assert result == b"a\r\n.\n.b\r\n"
    assert rest == b"NEXT\r\n"


async def test_immediate_dot_is_an_empty_message() -> None:
    assert await feed([b".\r\nQUIT\r\n"]) == (b"", b"QUIT\r\n")


async def test_terminator_split_over_many_packets_is_found() -> None:
    data = b"line one\r\nline two.\r\n..\r\n.\r\nRSET\r\n"
    result, rest = await feed([bytes([b]) for b in data])
    assert result == b"line one\r\nline two.\r\n..\r\n"
    assert rest == b"RSET\r\n"


async def test_stream_limit_is_restored_after_data() -> None:
    reader = asyncio.StreamReader(limit=100)
    reader.feed_data(b"x" * 500 + b"\r\n.\r\n")
    await read_data(reader, 1000)
    assert reader._limit == 100  # type: ignore[attr-defined]


@pytest.mark.parametrize("packet", [7, 64, 4096])
async def test_too_big_is_reported_after_reading_to_the_end(packet: int) -> None:
    data = b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n.\r\nNOOP\r\n"
    chunks = [data[i:i + packet] for i in range(0, len(data), packet)]
    result, rest = await feed(chunks, max_size=1000)
    assert isinstance(result, DataTooBig)
    assert rest == b"NOOP\r\n"


async def test_too_big_without_newlines_still_finds_the_end() -> None:
    result, rest = await feed([b"y" * 3000, b"\r\n.", b"\r\nQUIT\r\n"], max_size=500)
    assert isinstance(result, DataTooBig)
    assert rest == b"QUIT\r\n"


def test_unstuff_removes_one_leading_dot_per_line() -> None:
    assert unstuff(b"..a\r\n.b\r\nc.\r\n...\r\n") == b".a\r\nb\r\nc.\r\n..\r\n"
    assert unstuff(b"no dots\r\n") == b"no dots\r\n"


def test_line_endings_check_and_fix() -> None:
    assert check_line_endings(b"a\r\nb\r\n")
    for bad in (b"a\nb\r\n", b"a\rb\r\n", b"a\r\r\n", b"a\n\r"):
        assert not check_line_endings(bad)
    assert fix_line_endings(b"a\nb\rc\r\nd\n\re") == b"a\r\nb\r\nc\r\nd\r\n\r\ne"


def test_long_line_detection() -> None:
    assert not has_long_line(b"x" * 998 + b"\r\n", 998)
    assert has_long_line(b"short\r\n" + b"x" * 999 + b"\r\nend\r\n", 998)
    assert not has_long_line(b"", 998)
