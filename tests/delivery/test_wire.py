"""Dot-stuffing for the outbound client: same bytes as the straightforward definition."""

from __future__ import annotations

import asyncio
import random
import re
import time

import pytest

from kumocore.delivery.dot_stuffing import dot_stuff
from kumocore.delivery.wire import (
    MAX_REPLY_LINE,
    MAX_REPLY_LINES,
    ReplyError,
    ReplyReader,
)
from kumocore.node.streams import drain_needed

_ANY_EOL = re.compile(rb"\r\n|\r|\n")


def reference_dot_stuff(data: bytes) -> bytes:
    """The definition: every CR, LF and CRLF becomes CRLF, leading dots double, then ``.``."""
    data = _ANY_EOL.sub(b"\r\n", data)
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n",
        b"a",
        b".",
        b"..\r\n",
        b"a\r\n.b\r\n",
        b"a\n.\nb",  # a bare-LF "end of data" must come out as content, never as a dot line
        b"a\r.\rb\r\n",
        b"a\n\r.\r\n",
        b"x\x0by\x0cz\x1cw\x85v\r\n",  # str.splitlines breaks at these, bytes must not
    ],
)
def test_dot_stuff_matches_the_definition(data: bytes) -> None:
    assert dot_stuff(data) == reference_dot_stuff(data)


def test_dot_stuff_matches_the_definition_on_random_bodies() -> None:
    rng = random.Random(5321)
    alphabet = [b"a", b".", b"\r", b"\n", b"\r\n", b" ", b"\x0b"]
    for _ in range(3000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        assert dot_stuff(data) == reference_dot_stuff(data), data


def test_dot_stuffed_body_has_exactly_one_end_of_data() -> None:
    stuffed = dot_stuff(b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@example.com>\r\n.\r\n")
    assert stuffed.endswith(b"\r\n.\r\n")
    assert stuffed.count(b"\r\n.\r\n") == 1


# ---------------------------------------------------------------- reply timeouts


def _reader(*data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for chunk in data:
        reader.feed_data(chunk)
    return reader


async def test_reply_reader_times_out_a_reply_that_does_not_come() -> None:
    replies = ReplyReader(_reader(b"250-first line\r\n"))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await replies.read("MAIL FROM", 0.05)
    assert time.monotonic() - started < 1.0
    with pytest.raises(TimeoutError):  # the connection is dead for good: no stale reply
        await replies.read("RCPT TO", 5)
    replies.close()


async def test_reply_reader_times_out_a_dripping_reply_even_when_a_byte_lands_on_the_deadline(
) -> None:
    reader = _reader(b"2")
    replies = ReplyReader(reader)
    read = asyncio.ensure_future(replies.read("banner", 0.05))
    await asyncio.sleep(0.01)  # the read waits for the rest of its line

    def byte_then_deadline() -> None:
        # One tick: the peer's next byte wakes the waiting read, then the deadline passes
        # before that read runs again (what a peer dripping a byte a second hits).
        reader.feed_data(b"2")
        replies._timer.cancel()  # this is the deadline's one firing
        replies._deadline = asyncio.get_running_loop().time()
        replies._check_deadline()

    asyncio.get_running_loop().call_soon(byte_then_deadline)
    done, _ = await asyncio.wait({read}, timeout=1.0)
    assert done, "the read went on waiting for the rest of the line past its deadline"
    with pytest.raises(TimeoutError):
        read.result()
    replies.close()


async def test_reply_reader_gives_each_reply_its_own_timeout() -> None:
    reader = _reader(b"250 ok\r\n")
    replies = ReplyReader(reader)
    assert (await replies.read("MAIL FROM", 0.1)).code == 250
    # The timer armed for the first read fires during this one, which must survive it:
    # its own deadline is later.
    asyncio.get_running_loop().call_later(0.15, reader.feed_data, b"354 go\r\n")
    assert (await replies.read("DATA", 0.3)).code == 354
    replies.close()


async def test_reply_reader_shorter_timeout_after_a_longer_one_still_applies() -> None:
    replies = ReplyReader(_reader(b"250 ok\r\n"))
    assert (await replies.read(".", 300)).code == 250
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await replies.read("RSET", 0.05)
    assert time.monotonic() - started < 1.0
    replies.close()


async def test_reply_reader_reads_multi_line_and_malformed_replies() -> None:
    replies = ReplyReader(_reader(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\nhello\r\n"))
    ehlo = await replies.read("EHLO", 1)
    assert ehlo.code == 250
    assert set(replies.last_extensions) == {"PIPELINING", "8BITMIME"}
    with pytest.raises(ReplyError, match=r"malformed reply: b'hello\\r\\n'"):
        await replies.read("MAIL FROM", 1)
    replies.close()


async def test_reply_reader_accepts_a_bare_code_as_a_reply_line() -> None:
    replies = ReplyReader(_reader(b"250-first\r\n250\r\n"))
    assert (await replies.read("MAIL FROM", 1)).code == 250
    replies.close()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"250 " + b"x" * MAX_REPLY_LINE + b"\r\n", "reply line longer than 4096 bytes"),
        (b"250 " + b"x" * 100_000, "reply line longer than 4096 bytes"),  # no end in sight
        (b"250-more\r\n" * (MAX_REPLY_LINES + 1), "reply of more than 100 lines"),
        (b"250-first\r\n550 second\r\n", "code 550 within a 250"),
        (b"999 not a reply code\r\n", "malformed reply"),  # must not count as a bounce
        (b"100 continue\r\n", "malformed reply"),
    ],
)
async def test_reply_reader_refuses_replies_beyond_its_bounds(data: bytes, error: str) -> None:
    replies = ReplyReader(_reader(data))
    with pytest.raises(ReplyError, match=error):
        await replies.read("MAIL FROM", 1)
    replies.close()


async def test_reply_reader_takes_a_reply_of_the_longest_allowed_lines() -> None:
    line = b"250-" + b"x" * (MAX_REPLY_LINE - 6) + b"\r\n"
    replies = ReplyReader(_reader(line * (MAX_REPLY_LINES - 1) + b"250 end\r\n"))
    assert (await replies.read("EHLO", 1)).code == 250
    replies.close()


async def test_reply_reader_reports_a_connection_closed_mid_reply_as_a_reset() -> None:
    reader = _reader(b"250-partial\r\n25")
    reader.feed_eof()
    replies = ReplyReader(reader)
    with pytest.raises(ConnectionResetError, match="middle of a reply line"):
        await replies.read("MAIL FROM", 1)
    replies.close()


# ---------------------------------------------------------------- drain


class _Transport:
    def __init__(self, buffered: int = 0, closing: bool = False) -> None:
        self.buffered, self.closing = buffered, closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def _writer(transport: _Transport, reader: asyncio.StreamReader | None) -> asyncio.StreamWriter:
    protocol = asyncio.StreamReaderProtocol(reader or asyncio.StreamReader())
    return asyncio.StreamWriter(transport, protocol, reader, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_drain_is_skipped_only_when_it_could_not_wait_or_fail() -> None:
    idle = _writer(_Transport(), asyncio.StreamReader())
    buffered = _writer(_Transport(buffered=10), None)
    closing = _writer(_Transport(closing=True), None)
    failed_reader = asyncio.StreamReader()
    failed_reader.set_exception(ConnectionResetError())
    failed = _writer(_Transport(), failed_reader)
    assert not drain_needed(idle)
    assert drain_needed(buffered)  # flow control may pause
    assert drain_needed(closing)  # must see connection_lost
    assert drain_needed(failed)  # drain() would raise it
    for writer in (idle, buffered, closing, failed):
        writer.close()  # the fake transports hold nothing; closing keeps __del__ quiet


async def test_a_repeated_reply_is_parsed_once_and_distinct_ones_stay_within_the_memo() -> None:
    from kumocore.delivery import wire

    replies = ReplyReader(_reader(b"250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n"))
    first = await replies.read("MAIL FROM", 1)
    second = await replies.read("MAIL FROM", 1)
    third = await replies.read("RCPT TO", 1)  # same text, another command: its own Response
    replies.close()
    assert first is second and first.command == "MAIL FROM"
    assert third.command == "RCPT TO" and third.content == "Ok"
    assert str(third.enhanced_code) == "2.1.0"
    # A server that answers differently every time (a queue id per message) only cycles it.
    unique = b"".join(b"250 2.0.0 Ok: queued as %d\r\n" % n for n in range(2000))
    replies = ReplyReader(_reader(unique))
    for n in range(2000):
        assert (await replies.read("DATA", 1)).content == f"Ok: queued as {n}"
    replies.close()
    assert wire._parse_reply.cache_info().currsize <= wire.REPLY_MEMO_SIZE
