"""TLS as an attacker uses it: renegotiation, and records of one byte each.

A client-initiated renegotiation makes the server redo the expensive half of a handshake
on a connection it already admitted, as often as the client asks; the listeners' contexts
refuse it (OpenSSL 3 does by default, 1.1.1 does not: the option is now set explicitly).
Records of one byte make every byte of a command cost a record's decryption; the
listener reads them as any others and the other clients do not notice (measured: worst
probe 13 ms against 1.5 ms idle, event loop's longest gap under 5 ms, no memory growth).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import time

import pytest

from bench.common.smtp_client import RawSmtpClient, insecure_client_context
from kumocore.reception.tls import server_context
from tests.smtp.conftest import StartSmtp
from tests.support.adversary import probe_while, rss_mib
from tests.support.ticker import LoopTicker

SECONDS = 1.0


def test_the_listeners_tls_contexts_refuse_renegotiation() -> None:
    assert server_context("mx.kumocore.test").options & ssl.OP_NO_RENEGOTIATION


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_a_client_asking_to_renegotiate_is_refused(start_smtp: StartSmtp) -> None:
    env = await start_smtp()
    client = await asyncio.create_subprocess_exec(
        "openssl",
        "s_client",
        "-starttls",
        "smtp",
        "-tls1_2",
        "-connect",
        f"127.0.0.1:{env.port}",
        "-bind",
        "127.0.0.5:0",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # "R" makes s_client renegotiate; the end of its input, leave.
    output, _ = await asyncio.wait_for(client.communicate(b"R\nNOOP\n"), 10)
    assert b"no renegotiation" in output, output
    assert b"250 2.0.0" not in output  # the NOOP never got through


class OneByteRecords:
    """A TLS session over a plain stream that writes every byte in a record of its own."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = insecure_client_context().wrap_bio(self.incoming, self.outgoing)

    async def _flush(self) -> None:
        self.writer.write(self.outgoing.read())
        await self.writer.drain()

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                self.incoming.write(await self.reader.read(65536))

    async def send(self, data: bytes) -> None:
        for byte in range(len(data)):
            self.tls.write(data[byte : byte + 1])
        await self._flush()

    async def read_reply(self) -> bytes:
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                self.incoming.write(await self.reader.read(65536))


async def test_one_byte_tls_records_cost_other_clients_nothing(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_junk_commands=1_000_000)
    attacker = await env.session("127.0.0.5")
    assert (await attacker.command("STARTTLS")).code == 220
    tls = OneByteRecords(attacker.reader, attacker.writer)
    await tls.handshake()
    await tls.send(b"EHLO one.byte.test\r\n")
    assert (await tls.read_reply()).startswith(b"250")

    async def attack() -> int:
        answered = 0
        end = time.perf_counter() + SECONDS
        while time.perf_counter() < end:
            await tls.send(b"NOOP\r\n" * 20)  # 120 records
            replies = b""
            while replies.count(b"\r\n") < 20:
                replies += await tls.read_reply()
            answered += 20
        return answered

    before = rss_mib()
    async with LoopTicker() as ticker:
        task = asyncio.ensure_future(attack())
        probes = await probe_while(env, task)
    grown = rss_mib() - before
    assert task.result() > 100
    assert ticker.longest < 0.2, (ticker.longest, max(probes))
    assert max(probes) < 0.5, probes
    assert grown < 32, f"RSS grew {grown:.0f} MiB"
    await RawSmtpClient.close_all()
