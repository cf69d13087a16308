"""The DATA reader and its checks, fed byte patterns directly."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import kumocore.reception.smtp.data as data_io
import kumocore.reception.smtp.dots as dots
from kumocore.mail import crlf
from kumocore.reception.smtp.data import (
    DataBudget,
    DataOverBudget,
    DataTooBig,
    check_line_endings,
    fix_line_endings,
    has_long_line,
    read_data,
    read_message,
    scan_lines,
    unstuff,
)

Read = bytes | DataTooBig | DataOverBudget


async def feed(chunks: list[bytes], max_size: int = 1 << 20) -> tuple[Read, bytes]:
    """Run read_data over ``chunks`` arriving one by one; returns (result, what is left)."""
    return await run_reader(chunks, lambda reader: read_data(reader, max_size))


async def run_reader(
    chunks: list[bytes], read: Callable[[asyncio.StreamReader], Awaitable[Read]]
) -> tuple[Read, bytes]:
    reader = asyncio.StreamReader(limit=100)

    async def writer() -> None:
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        reader.feed_eof()

    task = asyncio.create_task(writer())
    result = await read(reader)
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


@pytest.fixture(params=["plain", "vectorised", "native"])
def scan_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``scan_lines`` by its plain pass, by NumPy's test for every non-empty body, and by
    the C scan (``kumocore/mail/_crlfscan.c``)."""
    if request.param == "native":
        if crlf.crlf_scan_native is None:
            pytest.skip("the C extension was not built (no C compiler)")
        return str(request.param)
    monkeypatch.setattr(crlf, "crlf_scan_native", None)
    if request.param == "plain":
        monkeypatch.setattr(crlf, "crlf_scan_vectorised", None)
    elif crlf.crlf_scan_vectorised is None:
        pytest.skip("NumPy (the fast extra) is not installed")
    else:
        monkeypatch.setattr(crlf, "VECTOR_MIN", 1)
    return str(request.param)


@pytest.mark.usefixtures("scan_path")
@pytest.mark.parametrize(
    "data",
    [b"", b"a", b"a\r\n", b"a\n", b"a\r", b"a\n\r", b"a\r\r\n", b"\r\n\r\n", b"x" * 12,
     b"x" * 12 + b"\r\n", b"ab\ncdefghijklmn\r\n", b"ab\rcdefghijklmn\r\n"],
)
def test_scan_lines_answers_as_the_two_separate_checks(data: bytes) -> None:
    assert scan_lines(data, 10) == (has_long_line(data, 10), check_line_endings(data))


@pytest.mark.usefixtures("scan_path")
def test_scan_lines_answers_as_the_two_separate_checks_on_random_bodies() -> None:
    rng = random.Random(998)
    alphabet = [b"a", b"bcd", b"\r", b"\n", b"\r\n", b"\r\n", b"."]
    for _ in range(3000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(16)))
        limit = rng.randrange(1, 8)
        assert scan_lines(data, limit) == (
            has_long_line(data, limit), check_line_endings(data)), (data, limit)


async def test_scanning_a_large_body_in_slices_gives_the_same_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kumocore.reception.smtp import lines

    monkeypatch.setattr(lines, "SCAN_SLICE", 8)  # tiny slices: every cut is exercised
    rng = random.Random(5321)
    alphabet = [b"a", b"bcd", b"\r", b"\n", b"\r\n", b"\r\n", b"\r\n", b"."]
    for _ in range(3000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        limit = rng.randrange(1, 8)
        long_line, clean = await lines.scan_lines_yielding(data, limit)
        expected_long, expected_clean = scan_lines(data, limit)
        assert long_line == expected_long, (data, limit)
        if not long_line:  # a long line is refused first; its other answer is not used
            assert clean == expected_clean, (data, limit)


def reference_split(stream: bytes) -> tuple[bytes, bytes]:
    """The definition: data ends at the first CRLF.CRLF, counting the DATA line's CRLF."""
    framed = b"\r\n" + stream
    end = framed.find(b"\r\n.\r\n")
    return framed[2:end + 2], framed[end + 5:]


@pytest.mark.parametrize("seed", range(6))
async def test_read_data_ends_where_the_definition_says_however_packets_arrive(
    seed: int,
) -> None:
    # Lines ending in a full stop, dot lines, bare LFs before dots, empty messages: the
    # reader switches between searching for ".CRLF" and for "CRLF.CRLF" as it peeks at
    # its buffer, and must end exactly at the first end-of-data marker every time.
    rng = random.Random(seed)
    tokens = [b"text", b"end.", b".", b"..", b"\r\n", b"\r\n", b"\n", b"\r", b" "]
    for _ in range(150):
        data = b"".join(rng.choice(tokens) for _ in range(rng.randrange(14)))
        stream = data + b"\r\n.\r\nNEXT\r\n" if rng.random() < 0.8 else b".\r\nNEXT\r\n"
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randrange(4))))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        result, rest = await feed(chunks)
        body, after = reference_split(stream)
        assert (result, rest) == (body, after), (stream, chunks)


def reference_unstuff(data: bytes) -> bytes:
    """RFC 5321 4.5.2 line by line: a line starting with a dot loses that dot."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


async def feed_message(chunks: list[bytes], budget: DataBudget | None = None) -> tuple[Read, bytes]:
    """Run read_message over ``chunks`` arriving one by one; the message and the rest."""
    result, rest = await feed_unstuffed(chunks, budget)
    return (result.message if isinstance(result, data_io.Unstuffed) else result), rest


async def feed_unstuffed(chunks: list[bytes],
                         budget: DataBudget | None = None) -> tuple[Any, bytes]:
    """Run read_message over ``chunks`` arriving one by one; what it returned, the rest."""
    return await run_reader(chunks, lambda reader: read_message(reader, 1 << 20, budget))


@pytest.mark.parametrize("window", [8, 64, data_io.READ_WINDOW])
@pytest.mark.parametrize("seed", range(4))
async def test_read_message_unstuffs_as_the_definition_says_across_windows_and_packets(
    seed: int, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny read window makes the reader take the data a window at a time, so dot lines
    # and end markers straddle every kind of boundary (window and packet).
    monkeypatch.setattr(data_io, "READ_WINDOW", window)
    rng = random.Random(seed)
    tokens = [b"text", b"end.", b".", b"..", b"\r\n", b"\r\n", b"\r\n.", b"\n", b"\r",
              b"base64/+=" * 5]
    for _ in range(120):
        data = b"".join(rng.choice(tokens) for _ in range(rng.randrange(40)))
        stream = data + b"\r\n.\r\nNEXT\r\n" if rng.random() < 0.9 else b".\r\nNEXT\r\n"
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randrange(6))))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        budget = DataBudget(1 << 20)
        result, rest = await feed_unstuffed(chunks, budget)
        raw, after = reference_split(stream)
        assert (result.message, rest) == (reference_unstuff(raw), after), (stream, chunks)
        assert budget.held == len(reference_unstuff(raw))  # what is held stays charged
        # What delivery then trusts: "no dot lines" exactly when the raw data has none.
        assert result.no_dot_lines == (b"\r\n." not in raw), (stream, chunks)
        if result.no_dot_lines:
            assert b"\r\n." not in result.message


async def test_read_message_of_a_large_body_finds_a_dot_line_behind_the_first_window() -> None:
    base64ish = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw==\r\n" * 3000
    stream = base64ish + b"..hidden\r\n" + base64ish + b".\r\nQUIT\r\n"
    packets = [stream[i:i + 16384] for i in range(0, len(stream), 16384)]
    result, rest = await feed_message(packets)
    assert result == base64ish + b".hidden\r\n" + base64ish
    assert rest == b"QUIT\r\n"


@pytest.mark.parametrize(("size", "pieces"), [(100_000, 1), (3 * data_io.READ_WINDOW, 2)])
async def test_a_message_within_two_read_windows_leaves_the_stream_in_one_piece(
    size: int, pieces: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each piece taken out of the stream is a copy, and pieces are joined (another). A
    # message that fits in the two windows the transport buffers before it pauses is
    # taken once; a larger one two windows at a time.
    taken: list[int] = []
    take = data_io._Collected.take

    def counted(self: Any, reader: asyncio.StreamReader, buffer: bytearray, size: int, *,
                last: bool = False) -> None:
        taken.append(size)
        take(self, reader, buffer, size, last=last)

    monkeypatch.setattr(data_io._Collected, "take", counted)
    body = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw==\r\n" * (size // 50)
    stream = body + b".\r\nQUIT\r\n"
    packets = [stream[i:i + 16384] for i in range(0, len(stream), 16384)]
    result, rest = await feed_message(packets)
    assert (result, rest) == (body, b"QUIT\r\n")
    assert len(taken) == pieces, taken


async def test_a_client_gone_before_the_end_of_data_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await feed_message([b"Subject: x\r\n\r\nbody\r\n."])


async def test_a_body_of_dot_lines_only_is_not_walked_line_by_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After the first dot line the reader searches for the marker in C: a client sending
    # nothing but dot lines must not make the loop step through them one by one.
    calls = 0
    real = dots.find_dot_line

    def counting(data: bytes | bytearray, start: int = 0) -> int:
        nonlocal calls
        calls += 1
        return real(data, start)

    monkeypatch.setattr(data_io, "find_dot_line", counting)
    body = b".x\r\n" * 250_000  # 1 MB, 250,000 dot lines
    packets = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    result, rest = await feed_message([b"Subject: dots\r\n\r\n", *packets, b".\r\nQUIT\r\n"])
    assert result == b"Subject: dots\r\n\r\n" + b"x\r\n" * 250_000
    assert rest == b"QUIT\r\n"
    assert calls <= 3  # one per read until the first dot line (the header packet, the next)
