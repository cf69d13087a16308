"""Opening the TCP stream to an MX: directly, through HAProxy, or through SOCKS5.

An egress source (``kumo.make_egress_source``) names how a connection leaves:

* ``source_address``: bind that local address and connect directly;
* ``ha_proxy_server`` + ``ha_proxy_source_address``: connect to HAProxy and send a PROXY
  protocol v2 header whose source is ``ha_proxy_source_address`` and whose destination
  is the MX (HAProxy, configured with ``usesrc clientip``, then connects from that
  address). The protocol has no reply, so a proxy that cannot bind shows up only as a
  lost or silent connection, as KumoMTA warns;
* ``socks5_proxy_server`` + ``socks5_proxy_source_address``: SOCKS5 (RFC 1928), with
  user name/password authentication (RFC 1929) when ``socks5_proxy_username``/
  ``socks5_proxy_password`` are set. As KumoMTA speaks to its KumoProxy (and to
  ``kumocore proxy serve``): a ``BIND`` of the source address (port 0), then
  ``CONNECT``; with ``socks5_proxy_bind_source = false`` only the ``CONNECT``, for a
  general SOCKS5 server that picks its outgoing address itself (Dante's ``external``).
  Either way kumocore checks the address the proxy reports having connected from and
  refuses the connection when it is not ``socks5_proxy_source_address``: mail never
  leaves from an address the operator did not choose.

:func:`open_stream` returns the stream and the source description for log records,
KumoMTA's ``{address, server, protocol}``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumocore.config.cidr import join_host_port
from kumocore.delivery.source_bind import connect_from
from kumocore.mail.internal_responses import debug_duration
from kumocore.policy.secrets import load_secret
from kumocore.reception.smtp.proxy_protocol import encode_v2

if TYPE_CHECKING:
    from kumocore.config import EgressSource

_SOCKS_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


class ProxyError(OSError):
    """The proxy refused or broke the connection (a transient delivery failure)."""


class ProxyUnreachable(ProxyError):
    """The proxy server itself did not take the connection (refused, unreachable): the
    source's proxy is unhealthy, whatever the MX (kumocore.delivery.source_failure)."""


class ProxyWrongSource(ProxyError):
    """The SOCKS5 proxy connected from another address than the source's: it could not
    (or would not) send from the address asked for, KumoMTA's proxy bind failure."""


class ProxyBindFailed(ProxyWrongSource):
    """The SOCKS5 proxy refused to bind the source address (KumoMTA's ProxyBindError:
    the address is not on the proxy host, or is taken)."""


_CONNECT, _BIND = 1, 2  # RFC 1928 request commands


@dataclass
class Progress:
    """How far :func:`open_stream` got, for a caller whose timeout cut it short: before
    the proxy took the TCP connection, the time ran out on the proxy, not the MX."""

    proxy_connected: bool = False


@dataclass(frozen=True)
class Route:
    """How to reach an MX for one egress source."""

    protocol: str | None  # None (direct), "haproxy" or "socks5"
    server: tuple[str, int] | None
    source_ip: str | None
    username: str | None = None
    password: bytes | None = None
    #: SOCKS5: ask the proxy to bind ``source_ip`` first (KumoProxy's BIND).
    bind: bool = False

    def describe(self, local: tuple[str, int] | None) -> dict[str, Any]:
        """The ``source_address`` of log records for a connection on this route."""
        if self.protocol is None:
            return {"address": f"{local[0]}:{local[1]}" if local else None}
        address = local if local is not None else (self.source_ip or "", 0)
        assert self.server is not None
        return {"address": join_host_port(*address), "server": join_host_port(*self.server),
                "protocol": self.protocol}


def _split(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def route_for_source(source: EgressSource | None, source_address: str | None = None) -> Route:
    """The route an egress source describes: direct (from ``source_address``) when it
    names no proxy. As in KumoMTA, a proxy is used only when both its server and its
    source address are set."""
    if source is not None and source.ha_proxy_server and source.ha_proxy_source_address:
        return Route("haproxy", _split(source.ha_proxy_server), source.ha_proxy_source_address)
    if source is not None and source.socks5_proxy_server and source.socks5_proxy_source_address:
        password = None
        if source.socks5_proxy_password is not None:
            # Read per connection, so a rotated secret is picked up without a restart.
            password = load_secret(source.socks5_proxy_password)
        return Route("socks5", _split(source.socks5_proxy_server),
                     source.socks5_proxy_source_address,
                     source.socks5_proxy_username, password, source.socks5_proxy_bind_source)
    return Route(None, None, source_address)


async def open_stream(
    route: Route, address: str, port: int, *, limit: int, progress: Progress | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    """A stream to ``address:port`` along ``route`` (the caller bounds the time;
    ``progress`` tells it how far the opening got)."""
    if route.protocol is None:
        if route.source_ip:  # bound apart, so a failed bind is told (source_bind)
            reader, writer = await connect_from(route.source_ip, address, port, limit=limit)
        else:
            reader, writer = await asyncio.open_connection(address, port, limit=limit)
        return reader, writer, route.describe(writer.get_extra_info("sockname"))
    assert route.server is not None and route.source_ip is not None
    if ipaddress.ip_address(route.source_ip).version != ipaddress.ip_address(address).version:
        raise ProxyError(
            f"{route.protocol} source address {route.source_ip} and destination "
            f"{address} are of different address families")
    try:
        reader, writer = await asyncio.open_connection(*route.server, limit=limit)
    except OSError as exc:
        raise ProxyUnreachable(
            f"{route.protocol} proxy {join_host_port(*route.server)} unreachable: {exc}") from exc
    if progress is not None:
        progress.proxy_connected = True
    try:
        if route.protocol == "haproxy":
            writer.write(encode_v2((route.source_ip, 0), (address, port)))
            await writer.drain()
            return reader, writer, route.describe(None)
        bound = await _socks5_connect(_Replies(reader, route.server), writer, route, address,
                                      port)
    except BaseException:
        writer.transport.abort()
        raise
    if bound[0] != str(ipaddress.ip_address(route.source_ip)):
        writer.transport.abort()
        raise ProxyWrongSource(
            f"SOCKS5 proxy {join_host_port(*route.server)} connected from {_shown(bound[0])}, "
            f"not from socks5_proxy_source_address {route.source_ip}")
    return reader, writer, route.describe(bound)


def timed_out(route: Route | None, progress: Progress, address: str, port: int,
              timeout: float) -> str:
    """What :func:`open_stream` was doing when its caller's ``timeout`` cut it short."""
    after = f"timeout after {debug_duration(timeout)}"
    if route is None:  # a unix socket path
        return f"{after} connecting to {address}"
    if route.protocol is None or route.server is None:
        return f"{after} connecting to {join_host_port(address, port)}"
    server = f"{route.protocol} proxy {join_host_port(*route.server)}"
    if not progress.proxy_connected:
        return f"{after} connecting to {server}"
    return f"{after} in the handshake with {server} (to {join_host_port(address, port)})"


class _Replies:
    """The proxy's side of the handshake: a closed or broken connection becomes a
    :class:`ProxyError` that names the proxy and the reply it was sending."""

    def __init__(self, reader: asyncio.StreamReader, server: tuple[str, int]) -> None:
        self.reader, self.server = reader, server

    async def exactly(self, size: int, reply: str) -> bytes:
        try:
            return await self.reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise ProxyError(
                f"SOCKS5 proxy {join_host_port(*self.server)} closed the connection during "
                f"its {reply} ({len(exc.partial)} of {size} bytes)") from exc
        except ConnectionError as exc:
            raise ProxyError(
                f"SOCKS5 proxy {join_host_port(*self.server)} broke the connection during "
                f"its {reply}: {exc}") from exc


def _shown(name: str) -> str:
    """A bound address as the proxy sent it, printable and short (a domain name of up
    to 255 bytes may hold anything)."""
    text = "".join(c if c.isprintable() else "?" for c in name)
    return text if len(text) <= 64 else text[:61] + "..."


async def _socks5_connect(
    reader: _Replies, writer: asyncio.StreamWriter, route: Route,
    address: str, port: int,
) -> tuple[str, int]:
    """RFC 1928 greeting, RFC 1929 authentication when offered, CONNECT; the address
    the proxy connected from."""
    methods = b"\x00\x02" if route.username is not None else b"\x00"
    writer.write(b"\x05" + bytes([len(methods)]) + methods)
    version, method = await reader.exactly(2, "greeting")
    if version != 5:
        raise ProxyError(f"SOCKS5 proxy answered with version {version}")
    if method == 2 and route.username is not None:
        await _socks5_authenticate(reader, writer, route.username, route.password or b"")
    elif method != 0:
        raise ProxyError(f"SOCKS5 proxy offers no usable authentication (method {method})")
    if route.bind:
        assert route.source_ip is not None
        status, _ = await _socks5_request(reader, writer, _BIND, route.source_ip, 0, "BIND")
        if status != 0:
            raise ProxyBindFailed(
                f"SOCKS5 proxy could not bind {route.source_ip}: "
                f"{_SOCKS_REPLIES.get(status, f'status {status}')}")
    status, bound = await _socks5_request(reader, writer, _CONNECT, address, port, "CONNECT")
    if status != 0:
        reason = _SOCKS_REPLIES.get(status, f"status {status}")
        raise ProxyError(f"SOCKS5 proxy could not connect to {address}:{port}: {reason}")
    return bound


async def _socks5_request(
    reader: _Replies, writer: asyncio.StreamWriter, command: int, address: str, port: int,
    name: str,
) -> tuple[int, tuple[str, int]]:
    """One request for an IP address; the reply's status and address."""
    ip = ipaddress.ip_address(address)
    kind = b"\x01" if ip.version == 4 else b"\x04"
    writer.write(bytes([5, command, 0]) + kind + ip.packed + struct.pack("!H", port))
    reply = f"{name} reply"
    _, status, _, atyp = await reader.exactly(4, reply)
    return status, await _read_socks_address(reader, atyp, reply)


async def _socks5_authenticate(
    reader: _Replies, writer: asyncio.StreamWriter, username: str, password: bytes
) -> None:
    user = username.encode()
    if len(user) > 255 or len(password) > 255:
        raise ProxyError("SOCKS5 user name and password are limited to 255 bytes each")
    writer.write(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
    _, status = await reader.exactly(2, "authentication reply")
    if status != 0:
        raise ProxyError("SOCKS5 proxy refused the user name or password")


async def _read_socks_address(reader: _Replies, atyp: int, reply: str) -> tuple[str, int]:
    if atyp == 1:
        raw = await reader.exactly(6, reply)
        return socket.inet_ntop(socket.AF_INET, raw[:4]), struct.unpack("!H", raw[4:])[0]
    if atyp == 4:
        raw = await reader.exactly(18, reply)
        return socket.inet_ntop(socket.AF_INET6, raw[:16]), struct.unpack("!H", raw[16:])[0]
    if atyp == 3:
        size = (await reader.exactly(1, reply))[0]
        raw = await reader.exactly(size + 2, reply)
        return raw[:size].decode("ascii", "replace"), struct.unpack("!H", raw[size:])[0]
    raise ProxyError(f"SOCKS5 proxy sent an unknown address type {atyp} in its {reply}")
