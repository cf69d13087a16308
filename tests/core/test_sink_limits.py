"""``kumocore sink`` bounds: each one pushed past by a client on 127.0.0.5 against a real sink
listening on 127.0.0.1, and a well-behaved client still served while that one misbehaves."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bench.common.ports import free_port
from kumocore.node.sink import StoreLimits, is_loopback, run_sink
from kumocore.node.sink_smtp import SinkLimits

KUMOCORE = Path(sys.executable).with_name("kumocore")
MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"

StartSink = Callable[..., Awaitable[int]]


class Client:
    """A raw SMTP client bound to 127.0.0.5 (an untrusted peer)."""

    opened: list[Client] = []  # closed by the ``start_sink`` fixture

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        Client.opened.append(self)

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=("127.0.0.5", 0)
        )
        return cls(reader, writer)

    async def reply(self, timeout: float = 10) -> str:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError(f"closed after {lines}")
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    async def command(self, line: bytes) -> str:
        self.writer.write(line + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def greet(self) -> None:
        assert (await self.reply()).startswith("220 ")
        assert (await self.command(b"EHLO client.test")).startswith("250")

    async def send(self, data: bytes = MESSAGE, recipients: int = 1) -> str:
        """MAIL, RCPT(s), DATA and ``data``; the reply to the final dot."""
        assert (await self.command(b"MAIL FROM:<a@client.test>")).startswith("250")
        for n in range(recipients):
            assert (await self.command(f"RCPT TO:<r{n}@sink.test>".encode())).startswith("250")
        assert (await self.command(b"DATA")).startswith("354")
        self.writer.write(data + b".\r\n")
        await self.writer.drain()
        return await self.reply()

    async def closed(self, timeout: float = 10) -> bool:
        return await asyncio.wait_for(self.reader.read(1), timeout) == b""

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@pytest.fixture
async def start_sink(tmp_path: Path) -> AsyncIterator[StartSink]:
    """Start a sink (in this process, on 127.0.0.1) with the given bounds; its port."""
    tasks: list[asyncio.Task[int]] = []

    async def start(store: StoreLimits | None = None, **limits: float) -> int:
        port = free_port()
        directory = tmp_path / f"sink{len(tasks)}"
        sink_limits = SinkLimits(**limits)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(
            run_sink(f"127.0.0.1:{port}", directory, None, sink_limits, store)))  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return port
            except OSError:
                assert time.monotonic() < deadline and not tasks[-1].done()
                await asyncio.sleep(0.05)

    yield start
    for client in Client.opened:
        await client.wait_closed()
    Client.opened.clear()
    await asyncio.sleep(0.1)  # the sink's side sees them go
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def served(port: int) -> None:
    """A well-behaved client gets its message saved."""
    client = await Client.connect(port)
    try:
        await client.greet()
        assert (await client.send()).startswith("250 2.0.0")
    finally:
        client.close()


async def test_a_message_past_the_size_bound_gets_552_5_3_4_and_the_session_goes_on(
    start_sink: StartSink, tmp_path: Path
) -> None:
    port = await start_sink(max_message_bytes=10_000)
    client = await Client.connect(port)
    await client.greet()
    assert "SIZE 10000" in await client.command(b"EHLO again.test")
    big = b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n"
    hostile = asyncio.create_task(client.send(big * 2000))  # 160 KB streamed
    await served(port)  # meanwhile
    assert (await hostile).startswith("552 5.3.4")
    assert (await client.send()).startswith("250 2.0.0")
    sizes = sorted(p.stat().st_size for p in (tmp_path / "sink0").glob("*.eml"))
    assert sizes == [len(MESSAGE), len(MESSAGE)]  # the big one was not kept


async def test_a_size_declared_past_the_bound_is_refused_at_mail_from(
    start_sink: StartSink,
) -> None:
    port = await start_sink(max_message_bytes=10_000)
    client = await Client.connect(port)
    await client.greet()
    assert (await client.command(b"MAIL FROM:<a@client.test> SIZE=10001")).startswith("552 5.3.4")
    assert (await client.command(b"MAIL FROM:<a@client.test> SIZE=10000")).startswith("250")
    client.close()


async def test_an_endless_line_is_dropped_as_it_arrives_and_gets_500_5_5_2(
    start_sink: StartSink,
) -> None:
    port = await start_sink(max_line_bytes=1000)
    client = await Client.connect(port)
    await client.greet()
    # a command line of 1 MB, and a message line of 1 MB: neither is kept, both answered
    client.writer.write(b"NOOP " + b"y" * 1_000_000 + b"\r\n")
    assert (await client.reply()).startswith("500 5.5.2")
    line = b"Subject: long\r\n\r\n" + b"z" * 1_000_000 + b"\r\n"
    other = asyncio.create_task(served(port))
    assert (await client.send(line)).startswith("500 5.5.2")
    await other
    exact = b"Subject: ok\r\n\r\n" + b"z" * 998 + b"\r\n"  # 1000 octets with CRLF: fine
    assert (await client.send(exact)).startswith("250 2.0.0")
    client.close()


async def test_a_silent_client_gets_421_4_4_2_after_the_idle_timeout_and_is_closed(
    start_sink: StartSink,
) -> None:
    port = await start_sink(idle_timeout=0.5)
    client = await Client.connect(port)
    await client.greet()
    await served(port)  # others are served while it sits there
    started = time.monotonic()
    assert (await client.reply(timeout=10)).startswith("421 4.4.2")
    assert await client.closed()
    assert time.monotonic() - started < 8


async def test_a_client_that_keeps_talking_is_closed_at_the_session_time_bound(
    start_sink: StartSink,
) -> None:
    port = await start_sink(idle_timeout=5, session_timeout=1.5)
    client = await Client.connect(port)
    await client.greet()
    started = time.monotonic()
    reply = ""
    while time.monotonic() - started < 15:
        client.writer.write(b"NOOP\r\n")  # never idle, and never done
        reply = await client.reply()
        if not reply.startswith("250"):
            break
        await asyncio.sleep(0.1)
    assert reply.startswith("421 4.4.2") and "session time" in reply
    assert await client.closed()
    await served(port)


async def test_connections_past_the_bound_get_421_4_7_0_and_are_closed(
    start_sink: StartSink,
) -> None:
    port = await start_sink(max_connections=2)
    held = [await Client.connect(port) for _ in range(2)]
    for client in held:
        await client.greet()
    extra = await Client.connect(port)
    assert (await extra.reply()).startswith("421 4.7.0")
    assert await extra.closed()
    held.pop().close()  # a slot frees up: a new client is served again
    deadline = time.monotonic() + 10
    while True:
        try:
            await served(port)
            break
        except (AssertionError, ConnectionError):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    held[0].close()


async def test_recipients_past_the_bound_get_452_4_5_3_and_the_rest_is_delivered(
    start_sink: StartSink, tmp_path: Path
) -> None:
    port = await start_sink(max_recipients=3)
    client = await Client.connect(port)
    await client.greet()
    assert (await client.command(b"MAIL FROM:<a@client.test>")).startswith("250")
    replies = [await client.command(f"RCPT TO:<r{n}@sink.test>".encode()) for n in range(5)]
    assert [r[:9] for r in replies] == ["250 2.1.5"] * 3 + ["452 4.5.3"] * 2
    assert (await client.command(b"DATA")).startswith("354")
    client.writer.write(MESSAGE + b".\r\n")
    assert (await client.reply()).startswith("250 2.0.0")
    client.close()


@pytest.mark.parametrize(
    ("store", "why"),
    [(StoreLimits(max_messages=2), "2 messages"), (StoreLimits(max_bytes=60), "60 bytes")],
)
async def test_the_sink_refuses_with_452_4_3_1_once_it_holds_its_bound(
    start_sink: StartSink, tmp_path: Path, store: StoreLimits, why: str
) -> None:
    port = await start_sink(store)
    client = await Client.connect(port)
    await client.greet()
    assert (await client.send()).startswith("250")
    assert (await client.send()).startswith("250")  # 2 x 22 bytes
    reply = await client.send()
    assert reply.startswith("452 4.3.1") and why in reply
    assert len(list((tmp_path / "sink0").glob("*.eml"))) == 2
    client.close()


def test_the_sink_refuses_a_non_loopback_address_unless_told_and_says_why(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [str(KUMOCORE), "sink", "--listen", "0.0.0.0:2599", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0:2599: not a loopback address" in result.stderr
    assert "--allow-non-loopback" in result.stderr


def test_a_bound_flag_refuses_zero_or_text_in_one_line(tmp_path: Path) -> None:
    for value in ("0", "lots"):
        result = subprocess.run(
            [str(KUMOCORE), "sink", "--max-connections", value, "--dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2
        assert "--max-connections" in result.stderr and "Traceback" not in result.stderr


def test_loopback_means_127_0_0_0_8_and_1_and_localhost_only() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.5", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "sink.example.com"]))


async def test_the_bound_flags_reach_the_running_sink(tmp_path: Path) -> None:
    """``kumocore sink`` itself, bounds from its flags: one recipient, 100-byte messages."""
    port = free_port()
    process = subprocess.Popen(
        [str(KUMOCORE), "sink", "--listen", f"127.0.0.1:{port}", "--dir", str(tmp_path),
         "--max-recipients", "1", "--max-message-size", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert b"listening" in await asyncio.to_thread(process.stdout.readline)
        client = await Client.connect(port)
        await client.greet()
        assert (await client.command(b"MAIL FROM:<a@client.test>")).startswith("250")
        assert (await client.command(b"RCPT TO:<r0@sink.test>")).startswith("250")
        assert (await client.command(b"RCPT TO:<r1@sink.test>")).startswith("452 4.5.3")
        assert (await client.command(b"DATA")).startswith("354")
        client.writer.write(b"Subject: x\r\n\r\n" + b"y" * 200 + b"\r\n.\r\n")
        assert (await client.reply()).startswith("552 5.3.4")
        await client.wait_closed()
        Client.opened.remove(client)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()
