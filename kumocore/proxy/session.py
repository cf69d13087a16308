"""One SOCKS5 client, as KumoProxy serves it (crates/proxy-server/src/proxy_handler.rs).

Greeting, then authentication: a client offering username/password (method 2) is always
authenticated by the policy's ``proxy_server_auth_rfc1929`` event; with ``require_auth`` a
client not offering it is refused (0xFF); otherwise "no authentication". Then requests,
until one connects or fails:

* BIND with an IP address binds a socket to it (port 0: any port) — the egress source
  address the MTA wants to send from; the reply carries the bound address;
* CONNECT to an IP address connects, from the bound socket if a BIND came first; the reply
  carries the address connected from, and the relay starts;
* a domain name is refused (general failure: the MTA resolves names itself), UDP
  ASSOCIATE too (command not supported); a second BIND or a failed request ends the
  session after its reply.

Each read of a step, each request's work and each reply is bounded by ``timeout``. The
sockets the session opened are closed on every path (the listener closes the client's).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from kumocore.config.cidr import join_host_port
from kumocore.proxy.metrics import ListenerMetrics
from kumocore.proxy.options import ProxyListenerConfig, TcpKeepalive
from kumocore.proxy.relay import CHUNK, relay
from kumocore.proxy.socks5 import (
    Command,
    Method,
    ProtocolError,
    Request,
    Status,
    auth_reply,
    method_reply,
    read_credentials,
    read_greeting,
    read_request,
    request_reply,
)

log = structlog.get_logger("kumocore.proxy")

T = TypeVar("T")
#: ``(username, password, conn_meta)`` → whether the credentials are good.
Authenticate = Callable[[str, str, Mapping[str, str]], Awaitable[bool]]
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]

#: OS errors with a SOCKS5 code of their own; any other is a general failure.
_ERRNO_STATUS = {
    errno.ENETUNREACH: Status.NETWORK_UNREACHABLE,
    errno.ETIMEDOUT: Status.TTL_EXPIRED,
    errno.ECONNREFUSED: Status.CONNECTION_REFUSED,
    errno.EHOSTUNREACH: Status.HOST_UNREACHABLE,
}


class SessionFailed(Exception):
    """The session ended on a client's or the network's failure (counted as failed)."""


def socket_address(address: Any) -> str:
    """``ip:port`` (``[ip]:port`` for IPv6) as KumoMTA writes a SocketAddr."""
    return join_host_port(address[0], address[1])


def set_keepalive(sock: Any, params: TcpKeepalive) -> None:
    """KumoProxy's ``tcp_keepalive`` on one socket (client or destination)."""
    if not params.enabled:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", params.time), ("TCP_KEEPINTVL", params.interval),
                        ("TCP_KEEPCNT", params.retries)):  # fmt: skip
        option = getattr(socket, name, None)
        if option is not None:  # Linux has all three; others only some
            sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(value)))


@dataclass
class Session:
    client: Stream
    config: ProxyListenerConfig
    metrics: ListenerMetrics
    authenticate: Authenticate
    peer: str
    local: str
    bound: socket.socket | None = None
    remote: Stream | None = None

    async def _step(self, work: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(work, self.config.timeout)
        except TimeoutError:
            raise SessionFailed(f"timeout {what} from {self.peer}") from None
        except ProtocolError as exc:
            if exc.status is not None:
                await self._send(request_reply(exc.status), "reply")
            raise SessionFailed(f"{exc} from {self.peer}") from exc

    async def _send(self, data: bytes, what: str) -> None:
        writer = self.client[1]
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), self.config.timeout)
        except TimeoutError:
            raise SessionFailed(f"timeout sending the {what} to {self.peer}") from None

    async def run(self) -> None:
        """The whole session; raises :class:`SessionFailed` (or ``OSError``) on failure."""
        try:
            methods = await self._step(read_greeting(self.client[0]), "reading the greeting")
            await self._negotiate(methods)
            while self.remote is None:
                request = await self._step(read_request(self.client[0]), "reading a request")
                status, address = await self._answer(request)
                await self._send(request_reply(status, address), "reply")
                if status != Status.SUCCESS:
                    return  # as KumoProxy: the reply was the session's end
            await relay(self.client, self.remote,
                        lambda n: self.metrics.add("proxy_bytes_client_to_dest", n),
                        lambda n: self.metrics.add("proxy_bytes_dest_to_client", n))  # fmt: skip
        finally:
            self._close()

    async def _negotiate(self, methods: set[int]) -> None:
        if Method.USERNAME_PASSWORD in methods:
            await self._send(method_reply(Method.USERNAME_PASSWORD), "method")
            username, password = await self._step(read_credentials(self.client[0]),
                                                   "reading credentials")  # fmt: skip
            meta = {"peer_address": self.peer, "local_address": self.local}
            accepted = await self._authenticate(username, password, meta)
            await self._send(auth_reply(accepted), "authentication status")
            if not accepted:
                raise SessionFailed(f"authentication failed for user {username} from {self.peer}")
        elif self.config.require_auth:
            await self._send(method_reply(Method.NO_ACCEPTABLE), "method")
            raise SessionFailed(f"{self.peer} did not offer password authentication")
        elif Method.NO_AUTH in methods:
            await self._send(method_reply(Method.NO_AUTH), "method")
        else:
            await self._send(method_reply(Method.NO_ACCEPTABLE), "method")
            raise SessionFailed(f"{self.peer} offered no method this proxy supports")

    async def _authenticate(self, username: str, password: str, meta: dict[str, str]) -> bool:
        # KumoProxy waits on its handler for ever; bounded here as every other step, so a
        # hung auth backend cannot hold each client (and its descriptor) past `timeout`.
        try:
            return await asyncio.wait_for(self.authenticate(username, password, meta),
                                          self.config.timeout)  # fmt: skip
        except TimeoutError:
            log.warning("authentication took longer than the timeout: refused",
                        user=username, peer=self.peer, timeout=self.config.timeout)  # fmt: skip
            return False

    async def _answer(self, request: Request) -> tuple[Status, tuple[str, int] | None]:
        if request.command not in (Command.BIND, Command.CONNECT):  # UDP ASSOCIATE, unknown
            return Status.COMMAND_NOT_SUPPORTED, None
        if request.is_domain:
            log.info("domain name refused", peer=self.peer, domain=request.host)
            return Status.SERVER_FAILURE, None
        try:
            bind = request.command == Command.BIND
            work = self._bind(request) if bind else self._connect(request)
            return Status.SUCCESS, await asyncio.wait_for(work, self.config.timeout)
        except TimeoutError:
            return Status.TTL_EXPIRED, None
        except _Refused as exc:
            return exc.status, None
        except OSError as exc:
            log.info("request failed", peer=self.peer, command=Command(request.command).name,
                     host=request.host, port=request.port, error=str(exc))  # fmt: skip
            return _ERRNO_STATUS.get(exc.errno or 0, Status.SERVER_FAILURE), None

    async def _bind(self, request: Request) -> tuple[str, int]:
        if self.bound is not None:
            raise _Refused(Status.SERVER_FAILURE)
        family = socket.AF_INET6 if ":" in request.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.bind((request.host, request.port))
        except OSError:
            sock.close()
            raise
        self.bound = sock
        address: tuple[str, int] = sock.getsockname()[:2]
        return address

    async def _connect(self, request: Request) -> tuple[str, int]:
        sock, self.bound = self.bound, None
        if sock is None:
            family = socket.AF_INET6 if ":" in request.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
        try:
            destination = (request.host, request.port)
            self.metrics.outbound(socket_address(destination))
            await asyncio.get_running_loop().sock_connect(sock, destination)
            set_keepalive(sock, self.config.tcp_keepalive)
            address: tuple[str, int] = sock.getsockname()[:2]
            self.remote = await asyncio.open_connection(sock=sock, limit=CHUNK)
        except BaseException:
            sock.close()
            raise
        return address

    def _close(self) -> None:
        if self.bound is not None:
            self.bound.close()
        if self.remote is not None:
            self.remote[1].close()


class _Refused(Exception):
    def __init__(self, status: Status) -> None:
        self.status = status
