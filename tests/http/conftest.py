"""Fixtures: real HTTP listeners on 127.0.0.1:0 over a recording reception pipeline."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kumocore.config import HttpListenerConfig
from kumocore.http.server import HttpListener, start_http_listener
from tests.reception.harness import HOSTNAME, Reception, make_reception
from tests.support.serve_worker import Worker


@dataclass
class HttpEnv:
    """A running listener, the reception behind it, and a way to call it."""

    listener: HttpListener
    reception: Reception

    @property
    def url(self) -> str:
        return self.listener.url

    async def request(
        self, method: str, path: str, *, source: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | bool = False,
        **kwargs: Any,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        """(status, JSON body or text, response), from a client bound to ``source``."""
        connector = aiohttp.TCPConnector(local_addr=(source, 0), ssl=ssl_context)
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.request(method, self.url + path, **kwargs) as response:
            if response.content_type == "application/json":
                return response.status, await response.json(), response
            return response.status, await response.text(), response

    async def inject(self, body: Any, **kwargs: Any) -> tuple[int, Any]:
        status, payload, _ = await self.request("POST", "/api/inject/v1", json=body, **kwargs)
        return status, payload

    @property
    def messages(self) -> list[Any]:
        return self.reception.messages


StartHttp = Callable[..., Awaitable[HttpEnv]]


@pytest.fixture
async def start_http() -> AsyncIterator[StartHttp]:
    """``await start_http(policy, ..., use_tls=True)``: listener options as keyword
    arguments, policy objects (with ``@hookimpl`` methods) as positionals."""
    envs: list[HttpEnv] = []

    async def start(*policies: object, **options: Any) -> HttpEnv:
        reception = await make_reception(*policies)
        config = HttpListenerConfig.from_options(
            {"listen": "127.0.0.1:0", "hostname": HOSTNAME, **options})
        env = HttpEnv(await start_http_listener(reception.runtime, config), reception)
        envs.append(env)
        return env

    yield start
    for env in envs:
        await env.listener.close()
        await env.reception.close()


@pytest.fixture
async def http(start_http: StartHttp) -> HttpEnv:
    """A listener with default options and no policy."""
    return await start_http()


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[Worker]:
    """A started one-worker ``kumocore serve`` (tests.support.serve_worker)."""
    node = Worker(tmp_path)
    node.start()
    try:
        await node.wait_for_log("kumocore ready", timeout=60)
        yield node
    finally:
        node.stop()
