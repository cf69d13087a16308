"""The SMTP listener against an adversary, measured from outside: what a real node holds,
and what its other clients wait, while one peer (127.0.0.5, outside ``relay_hosts``)
attacks. The attacks the earlier rounds pinned (tests/reliability/test_sec_smtp.py,
test_smtp_fuzz.py, test_limits.py, tests/smtp/test_adversary_*.py) are not repeated; each
test here fails without the change it names (kumocore/reception/smtp/):

* STARTTLS handshake flood: the timer meant to abort a closed connection after the 5 s
  close grace held it (``call_later(CLOSE_GRACE, transport.abort)``), and with it the
  TLS layer (a 64 KiB read buffer, OpenSSL's state); a closed session then kept that
  buffer until the cyclic collector ran. 1,500 handshakes grew the node's RSS by
  117-124 MiB (12,500 in 25 s: +270 MiB and still growing). Now the timer holds the
  transport weakly and a lost TLS connection drops its buffer (protocol.py): +13 MiB.
* XCLIENT from a peer with ``allow_xclient`` was no junk command: 100,000 pipelined ones
  were all answered (35 s of the event loop); now cut at ``max_junk_commands`` like
  NOOP (session.py).
* A body of dot lines was unstuffed in one ``replace``: 32 MiB of ``..`` lines held the
  loop 150 ms, no other client served meanwhile; now a slice at a time (data.py).
* A body line that never ends in CRLF (32 MiB of bare LFs) was scanned whole to learn
  it is too long: 110 ms; a slice without a CRLF now says so (lines.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.common.smtp_client import RawSmtpClient
from bench.reliability import abuse
from bench.reliability.crash import KumoServer
from kumocore.config import EsmtpListenerConfig
from kumocore.reception.smtp import data as data_io
from kumocore.reception.smtp.budget import DataBudget
from kumocore.reception.smtp.server import start_esmtp_listener
from tests.reception.harness import HOSTNAME, make_reception
from tests.reliability.conftest import StartKumo
from tests.smtp.conftest import SmtpEnv
from tests.support.adversary import probe_while
from tests.support.ticker import LoopTicker

UNTRUSTED = "127.0.0.5"

# A STARTTLS handshake flood from one address, in its own process (its TLS work must not
# take this process's GIL): THREADS clients each doing HANDSHAKES whole handshakes.
TLS_FLOOD = r"""
import socket, ssl, sys, threading
port, source, threads, each = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
done = []
def reply(stream):
    while True:
        line = stream.readline()
        if not line or line[3:4] != b"-":
            return line
def client():
    for _ in range(each):
        try:
            sock = socket.create_connection(("127.0.0.1", port), 10, (source, 0))
            stream = sock.makefile("rb")
            reply(stream)
            sock.sendall(b"EHLO flood.test\r\n")
            reply(stream)
            sock.sendall(b"STARTTLS\r\n")
            if reply(stream).startswith(b"220"):
                context.wrap_socket(sock).close()
                done.append(1)
            sock.close()
        except OSError:
            pass
workers = [threading.Thread(target=client) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(len(done))
"""
THREADS = 20
HANDSHAKES = 75  # per thread: 1,500 in all, 4-5 s on the 2-core development VM


def _open_fds(server: KumoServer) -> int:
    assert server.process is not None
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


async def _tls_session(port: int, source: str) -> None:
    client = await RawSmtpClient.connect(port, source=source)
    await client.hello()
    assert (await client.starttls()).code == 220
    assert (await client.command("NOOP")).code == 250
    await client.close()


@pytest.mark.slow
async def test_a_starttls_handshake_flood_leaves_no_closed_tls_session_in_memory(
    start_kumo: StartKumo,
) -> None:
    server = start_kumo()
    await _tls_session(server.port, UNTRUSTED)  # OpenSSL's one-off costs come before
    rss_before, fds_before = server.rss_kib(), _open_fds(server)
    flood = subprocess.Popen(
        [sys.executable, "-c", TLS_FLOOD, str(server.port), UNTRUSTED, str(THREADS),
         str(HANDSHAKES)], stdout=subprocess.PIPE, text=True)
    peak = rss_before
    while flood.poll() is None:
        peak = max(peak, server.rss_kib())
        await asyncio.sleep(0.05)
    handshakes = int(flood.communicate()[0])
    peak = max(peak, server.rss_kib())  # within the close grace of the last ones
    await asyncio.sleep(1.0)
    grown_mib = (peak - rss_before) / 1024
    figures = {"handshakes": handshakes, "rss_before_mib": round(rss_before / 1024, 1),
               "peak_growth_mib": round(grown_mib, 1), "fds_before": fds_before,
               "fds_after": _open_fds(server)}
    assert handshakes >= THREADS * HANDSHAKES * 0.9, figures  # the flood was served
    # 1,500 handshakes: +117 to +124 MiB before (each closed session's TLS layer held for
    # the close grace), +37 to +38 MiB with the weak timer alone (a closed session kept
    # its 64 KiB buffer until a collection), +13 MiB with both.
    assert grown_mib < 24, figures
    assert _open_fds(server) <= fds_before + 2, figures  # every socket was closed
    # Another client is served as before.
    await _tls_session(server.port, "127.0.0.1")
    assert abuse.probe(server.port, "ok.tlsflood@crash.test").code == 250


@pytest.fixture(scope="module")
def xclient_kumo(start_module_kumo: StartKumo) -> KumoServer:
    """A node whose listener lets 127.0.0.1 (a trusted proxy) send XCLIENT."""
    return start_module_kumo(listener={"peer": {"127.0.0.1/32": {"allow_xclient": True}}})


async def _pipeline(port: int, source: str, payload: bytes) -> list[bytes]:
    """Every reply to ``payload`` sent in one piece after EHLO, until the server closes
    (or stays silent for 5 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        replies: list[bytes] = []
        await reader.readline()
        writer.write(b"EHLO pipeline.test\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
        writer.write(payload)
        with contextlib.suppress(ConnectionError, TimeoutError):  # timeout: never closed
            while line := await asyncio.wait_for(reader.readline(), 5):
                replies.append(line)
        return replies
    finally:
        writer.transport.abort()


async def test_pipelined_xclient_from_a_trusted_proxy_is_cut_at_the_junk_command_limit(
    xclient_kumo: KumoServer,
) -> None:
    # Before: every XCLIENT answered with the banner (100,000 of them, 35 s of the loop).
    replies = await _pipeline(xclient_kumo.port, "127.0.0.1", b"XCLIENT ADDR=127.0.0.1\r\n" * 400)
    banners = sum(line.startswith(b"220 ") for line in replies)
    # 100 junk commands (EHLO the first) answered, 20 more counted as errors, the cut.
    assert banners == 119, (banners, replies[-2:])
    assert replies[-1] == b"421 4.7.0 kumo.rel.test too many errors\r\n"
    # The listener still takes XCLIENT and mail from the proxy on a new connection.
    replies = await _pipeline(xclient_kumo.port, "127.0.0.1", b"XCLIENT ADDR=10.1.2.3\r\nQUIT\r\n")
    assert replies[0].startswith(b"220 "), replies
    assert abuse.probe(xclient_kumo.port, "ok.xclient@crash.test").code == 250


# ---------------------------------------------------------------------------- bodies
@pytest.fixture
async def env() -> AsyncIterator[SmtpEnv]:
    """A listener of a started node in this process (its loop is the one LoopTicker
    watches), 40 MiB messages allowed so that one body can hold the loop longer."""
    reception = await make_reception()
    config = EsmtpListenerConfig.from_options({
        "listen": "127.0.0.1:0", "hostname": HOSTNAME, "max_message_size": "40 MiB",
        "domains": {"example.com": {"relay_to": True}}})
    listener = SmtpEnv(await start_esmtp_listener(reception.runtime, config), reception)
    yield listener
    await listener.close()


#: 32 MiB of lines that are a stuffed dot (8 Mi of ``..``), and 32 MiB of bare LFs
#: ended by one CRLF (a single line of 32 MiB for the length limit).
BODIES: dict[str, tuple[bytes, bytes, int]] = {
    "dot lines": (b"Subject: dots\r\n\r\n", b"..\r\n" * 4, 250),
    "bare LF line": (b"Subject: lfs\r\n\r\n", b"\n" * 16, 500),
}
CHUNK = 256 * 1024


@pytest.mark.parametrize("kind", BODIES)
async def test_a_pathological_body_does_not_stall_other_clients(env: SmtpEnv, kind: str) -> None:
    head, pattern, code = BODIES[kind]
    chunk = pattern * (CHUNK // len(pattern))
    attacker = await env.session(UNTRUSTED)
    for command in ("MAIL FROM:<a@example.com>", "RCPT TO:<r@example.com>", "DATA"):
        assert (await attacker.command(command)).code in (250, 354)

    async def attack() -> object:
        # In pieces, as a remote client's body arrives: written in one go, the client's
        # own copy of it (in this process) would hold the loop being watched.
        attacker.writer.write(head)
        for _ in range((32 << 20) // CHUNK):
            attacker.writer.write(chunk)
            await attacker.writer.drain()
        attacker.writer.write(b"\r\n.\r\n")
        return (await attacker.read_reply()).code

    async with LoopTicker() as ticker:
        task = asyncio.ensure_future(attack())
        probes = await probe_while(env, task)
    assert task.result() == code
    # Measured here: dot lines 150-155 ms in one piece before, the LF line 109-116 ms;
    # 25-35 ms after, what any 32 MiB body costs (its copies).
    assert ticker.longest < 0.07, (ticker.longest, max(probes))


async def test_unstuffing_in_slices_gives_what_unstuffing_whole_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(data_io, "UNSTUFF_SLICE", 3)  # tiny slices: every cut is exercised
    rng = random.Random(4552)
    alphabet = [b"a", b".", b"..", b"\r", b"\n", b"\r\n", b"\r\n.", b"\r\n..", b"bc"]
    for _ in range(3000):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        whole = data_io.unstuff(raw, dot_lines=True)
        assert await data_io.unstuff_yielding(raw, dot_lines=True) == whole, raw


async def test_a_client_gone_while_its_body_is_unstuffed_leaves_nothing_charged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(data_io, "UNSTUFF_SLICE", 1024)
    budget = DataBudget(1 << 20)
    reader = asyncio.StreamReader()
    reader.feed_data(b".x\r\n" * 4096 + b".\r\n")
    task: asyncio.Task[Any] = asyncio.ensure_future(
        data_io.read_message(reader, 1 << 20, budget))
    await asyncio.sleep(0)  # read, and the first slice unstuffed: held until the reply
    assert not task.done() and budget.held == 4 * 4096
    task.cancel()  # the client went away (the session's task is cancelled)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert budget.held == 0  # else 16 KiB would stay charged to the listener for good
