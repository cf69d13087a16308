"""Postfix's smtp-source against a listener with an in-memory spool: every message
arrives, and the rate is printed (run with -s to see it)."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from kumocore.config import EsmtpListenerConfig
from kumocore.reception.smtp.server import start_esmtp_listener
from tests.reception.harness import make_reception

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(SMTP_SOURCE) is None, reason="Postfix smtp-source missing")
async def test_smtp_source_messages_all_arrive() -> None:
    reception = await make_reception()
    config = EsmtpListenerConfig.from_options({"listen": "127.0.0.1:0", "hostname": "mx.test"})
    listener = await start_esmtp_listener(reception.runtime, config)
    count = 1000
    try:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            SMTP_SOURCE, "-s", "20", "-m", str(count), "-l", "2048", "-f", "a@example.com",
            "-t", "b@example.com", f"127.0.0.1:{listener.address[1]}")
        assert await process.wait() == 0
        elapsed = time.perf_counter() - started
    finally:
        await listener.close()
        await reception.close()
    assert len(reception.messages) == count
    print(f"\nsmtp-source: {count} x 2 KB messages, 20 sessions: "
          f"{count / elapsed:.0f} messages/s")
