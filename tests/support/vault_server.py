"""A stand-in for HashiCorp Vault's KV version 2 read API, for tests (Vault itself is not
packaged in Debian): a real aiohttp server on 127.0.0.1.

``GET /v1/<mount>/data/<path>`` with the right ``X-Vault-Token`` answers
``{"data": {"data": {...}, "metadata": {...}}}`` as Vault does; a wrong or missing token
answers 403 and an unknown path 404, each with Vault's ``{"errors": [...]}`` body.
:func:`silent_server` accepts connections and never answers; ``oversized`` paths answer
more bytes than any secret holds.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class VaultServer:
    token: str = field(default_factory=lambda: "hvs." + secrets.token_urlsafe(16))
    port: int = 0
    #: (mount, path) -> the secret's fields.
    secrets: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    #: (mount, path) of paths answered with ``size`` bytes of padding: path -> size.
    oversized: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (mount, path) of ``oversized`` paths sent chunked, without a Content-Length.
    chunked: set[tuple[str, str]] = field(default_factory=set)
    #: (mount, path) answered with a 307 to this location.
    redirects: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Every request: (path, token sent or None).
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, path: str, mount: str = "secret", **fields: object) -> None:
        """``vault kv put -mount=MOUNT PATH k=v ...``."""
        self.secrets[(mount, path)] = dict(fields)

    def source(self, path: str, **extra: str) -> dict[str, str]:
        """A complete Lua-style key source table for ``path`` on this server."""
        return {
            "vault_mount": "secret",
            "vault_path": path,
            "vault_address": self.address,
            "vault_token": self.token,
            **extra,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        mount, path = request.match_info["mount"], request.match_info["path"]
        sent = request.headers.get("X-Vault-Token")
        self.requests.append((request.path, sent))
        if sent != self.token:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        if (mount, path) in self.redirects:
            raise web.HTTPTemporaryRedirect(self.redirects[(mount, path)])
        if (mount, path) in self.oversized:
            padding = "x" * self.oversized[(mount, path)]
            body = json.dumps({"data": {"data": {"key": padding}, "metadata": {}}}).encode()
            if (mount, path) not in self.chunked:
                return web.Response(body=body, content_type="application/json")
            reply = web.StreamResponse()
            reply.enable_chunked_encoding()
            await reply.prepare(request)
            for start in range(0, len(body), 65536):
                await reply.write(body[start : start + 65536])
            await reply.write_eof()
            return reply
        fields = self.secrets.get((mount, path))
        if fields is None:
            return web.json_response({"errors": []}, status=404)
        metadata = {"created_time": "2026-01-01T00:00:00Z", "version": 1, "destroyed": False}
        return web.Response(
            text=json.dumps({"request_id": "r", "data": {"data": fields, "metadata": metadata}}),
            content_type="application/json",
        )


@asynccontextmanager
async def vault_server() -> AsyncIterator[VaultServer]:
    server = VaultServer()
    app = web.Application()
    app.router.add_get("/v1/{mount}/data/{path:.+}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """The address of a server that accepts connections, reads, and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
