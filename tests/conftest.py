"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bench.common.smtp_client import RawSmtpClient


@pytest.fixture(autouse=True)
async def close_raw_smtp_clients() -> AsyncIterator[None]:
    """Close the raw SMTP clients a test left open, in its own loop: an abandoned client
    socket would otherwise raise ResourceWarning (an error here) in whichever later test
    the garbage collector happens to run. Only test clients are closed: a socket kumocore
    itself leaks still warns."""
    yield
    await RawSmtpClient.close_all()
