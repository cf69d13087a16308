"""A STARTTLS whose handshake never completes must not leave its session behind.

Issue 14, finding 1: before the fix, a handshake that failed (garbage, a close, TLS 1.0
only) or never started kept the session in the listener's set for ever, so a few of them
used up ``max_connections``.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import warnings

from kumocore.reception.smtp.server import EsmtpListener
from kumocore.reception.smtp.session import EsmtpSession
from tests.smtp.conftest import SmtpEnv, StartSmtp

PEER = "127.0.0.5"


async def _until_no_sessions(listener: EsmtpListener, timeout: float = 5.0) -> int:
    """Wait for the listener's session set to empty; the sessions left at the end."""
    deadline = asyncio.get_running_loop().time() + timeout
    while listener.sessions and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return len(listener.sessions)


async def _ready_for_tls(env: SmtpEnv) -> asyncio.StreamWriter:
    client = await env.session(PEER)
    assert (await client.command("STARTTLS")).code == 220
    return client.writer


async def test_failed_handshakes_release_their_sessions(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connections=3)
    # Garbage instead of a ClientHello.
    writer = await _ready_for_tls(env)
    writer.write(b"\x16\x03\x01\x00\x05garbage, not TLS\r\n" * 4)
    # A close in the middle of the handshake.
    closer = await _ready_for_tls(env)
    closer.close()
    # A client that only speaks TLS 1.0/1.1 (the listener needs 1.2 or later).
    old = await env.session(PEER)
    assert (await old.command("STARTTLS")).code == 220
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        await asyncio.wait_for(old.writer.start_tls(context), 5)
    except (ssl.SSLError, ConnectionError, TimeoutError):
        pass
    assert await _until_no_sessions(env.listener) == 0
    # Nothing keeps the abandoned sessions (and their TLS buffers) alive either.
    await asyncio.sleep(0.1)
    gc.collect()
    assert [o for o in gc.get_objects()
            if isinstance(o, EsmtpSession) and o.listener is env.listener] == []
    # All three slots are free again: a new client is greeted.
    client = await env.client(PEER)
    assert (await client.read_reply()).code == 220
    writer.close()


async def test_silent_handshake_is_cut_at_the_deadline(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connections=2, tls_handshake_timeout="0.3s")
    writers = [await _ready_for_tls(env) for _ in range(2)]  # then say nothing
    assert len(env.listener.sessions) == 2
    assert await _until_no_sessions(env.listener, timeout=5.0) == 0
    client = await env.client(PEER)
    assert (await client.read_reply()).code == 220
    for writer in writers:
        writer.close()
