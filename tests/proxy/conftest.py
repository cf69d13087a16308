from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.proxy.support import OPEN_CLIENTS


@pytest.fixture(autouse=True)
async def close_proxy_clients() -> AsyncIterator[None]:
    yield
    while OPEN_CLIENTS:
        writer = OPEN_CLIENTS.pop()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
