"""An MTA-STS policy server for tests: real HTTPS on a loopback address, with a
certificate from a private CA (trustme) that the client side is told to trust.

``publish(dns, 'example.com', 'enforce', 'mx1.example.com')`` puts the ``_mta-sts`` TXT
record and the ``mta-sts.`` address into the test DNS server and the policy text behind
``https://mta-sts.example.com/.well-known/mta-sts.txt`` (any port: the client is built
with :attr:`PolicyServer.port`).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trustme
from aiohttp import web

from kumocore.testing.dns import TestDnsServer

#: Where the policy server listens (a loopback address of its own).
POLICY_HOST = "127.0.0.41"


@dataclass
class PolicyServer:
    ca: trustme.CA
    port: int = 0
    #: The policy text per policy domain (``example.com``).
    bodies: dict[str, bytes] = field(default_factory=dict)
    #: ``host/path`` of every request, in order.
    requests: list[str] = field(default_factory=list)

    def publish(
        self,
        dns: TestDnsServer,
        domain: str,
        mode: str,
        *mx: str,
        policy_id: str = "1",
        max_age: int = 86400,
    ) -> None:
        """Announce a policy for ``domain`` in ``dns`` and serve its text."""
        dns.set_records(f"_mta-sts.{domain}", "TXT", [f"v=STSv1; id={policy_id};"])
        dns.set_records(f"mta-sts.{domain}", "A", [POLICY_HOST])
        lines = [
            "version: STSv1",
            f"mode: {mode}",
            *(f"mx: {m}" for m in mx),
            f"max_age: {max_age}",
        ]
        self.bodies[domain] = ("\r\n".join(lines) + "\r\n").encode()

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting the server's private CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@asynccontextmanager
async def policy_server(*domains: str) -> AsyncIterator[PolicyServer]:
    """Serve policies for ``domains`` (the certificate names ``mta-sts.<domain>``)."""
    server = PolicyServer(trustme.CA())

    async def handle(request: web.Request) -> web.Response:
        server.requests.append(f"{request.host}{request.path}")
        domain = request.host.partition(":")[0].removeprefix("mta-sts.")
        body = server.bodies.get(domain)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/mta-sts.txt", handle)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.ca.issue_cert(*(f"mta-sts.{d}" for d in domains)).configure_cert(context)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, POLICY_HOST, 0, ssl_context=context)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server
    finally:
        await runner.cleanup()
