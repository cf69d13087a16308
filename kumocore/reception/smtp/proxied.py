"""Connections that arrive through a proxy: the PROXY header and XCLIENT.

Both only ever apply to peers the operator trusts, named by a ``peer`` block of
``kumo.start_esmtp_listener`` (KumoMTA's ``require_proxy_protocol`` and
``allow_xclient``). What they say replaces the socket's addresses for everything that
follows: the ``peer``/``via`` blocks are chosen again, relay decisions use the proxied
client's address, and ``received_from``/``received_via`` in the meta and in the log
records name it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from kumocore.digits import port_number
from kumocore.reception.smtp.proxy_protocol import ProxyHeaderError, read_header

if TYPE_CHECKING:
    from kumocore.config import EsmtpListenerConfig
    from kumocore.reception.smtp.limits import PeerCounts

log = structlog.get_logger("kumocore.reception.smtp")


class _Listener(Protocol):
    @property
    def peers(self) -> PeerCounts: ...


class Proxied(Protocol):
    """What the PROXY header and XCLIENT read and change of a session (structural: the
    session uses this module, not the other way round)."""

    closing: bool

    @property
    def _reader(self) -> asyncio.StreamReader: ...
    @property
    def transport(self) -> asyncio.BaseTransport | None: ...
    @property
    def listener(self) -> _Listener: ...
    @property
    def config(self) -> EsmtpListenerConfig: ...
    @property
    def txn(self) -> object | None: ...
    @property
    def peer_ip(self) -> str: ...
    @property
    def peer_address(self) -> str: ...
    @property
    def local_ip(self) -> str: ...
    @property
    def local_address(self) -> str: ...

    def set_addresses(self, peer: Any, local: Any) -> None: ...
    async def refresh_parameters(self) -> bool: ...
    async def reply(self, code: int, text: str) -> None: ...
    async def syntax_error(self, code: int, text: str) -> None: ...


async def accept_proxy_header(session: Proxied) -> bool:
    """Read the PROXY header a trusted proxy must send before our banner.

    False (and the connection is closed, no banner, as KumoMTA does) when it is
    missing, malformed or late.
    """
    # Bounded here rather than by the idle timer, which would answer with an SMTP
    # reply: before the header, the peer must get no SMTP text at all.
    try:
        async with asyncio.timeout(session.config.client_timeout):
            header = await read_header(session._reader)
    except (ProxyHeaderError, TimeoutError) as exc:
        reason = "no PROXY header in time" if isinstance(exc, TimeoutError) else str(exc)
        log.info("PROXY protocol header refused", peer=session.peer_address, reason=reason)
        session.closing = True
        if session.transport is not None:
            session.transport.close()
        return False
    if header.source is None or header.destination is None:
        return True  # LOCAL/UNKNOWN: the proxy speaks for itself
    move_session(session, header.source, header.destination)
    return True


def move_session(
    session: Proxied, peer: tuple[str, int], local: tuple[str, int]
) -> None:
    """Make ``peer``/``local`` the session's addresses (per-peer counts follow)."""
    proxy = session.peer_address
    session.listener.peers.remove(session.peer_ip)
    session.set_addresses(peer, local)
    session.listener.peers.add(session.peer_ip)
    log.debug("proxied connection", proxy=proxy, peer=session.peer_address,
              local=session.local_address)


def parse_xclient(arg: str, session: Proxied) -> tuple[tuple[str, int], tuple[str, int]]:
    """The addresses an ``XCLIENT`` command sets (ADDR, PORT, DESTADDR, DESTPORT, as
    KumoMTA supports); ValueError names an attribute it cannot take."""
    peer_ip, peer_port = session.peer_ip, _socket_port(session.peer_address)
    local_ip, local_port = session.local_ip, _socket_port(session.local_address)
    if not arg.strip():
        raise ValueError("XCLIENT needs at least one attribute")
    for item in arg.split():
        name, sep, value = item.partition("=")
        name = name.upper()
        if not sep:
            raise ValueError(f"bad XCLIENT attribute {item!r}")
        if name == "ADDR":
            peer_ip = _xclient_ip(value)
        elif name == "PORT":
            peer_port = _xclient_port(value)
        elif name == "DESTADDR":
            local_ip = _xclient_ip(value)
        elif name == "DESTPORT":
            local_port = _xclient_port(value)
        else:
            raise ValueError(f"XCLIENT attribute {name} is not supported")
    return (peer_ip, peer_port), (local_ip, local_port)


def _socket_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _xclient_ip(value: str) -> str:
    # Postfix's form for IPv6 is "IPV6:addr".
    text = value[5:] if value.upper().startswith("IPV6:") else value
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ValueError(f"bad XCLIENT address {value!r}") from exc


def _xclient_port(value: str) -> int:
    port = port_number(value)
    if port is None:
        raise ValueError(f"bad XCLIENT port {value!r}")
    return port


async def xclient(session: Proxied, arg: str) -> None:
    """``XCLIENT ADDR=.. PORT=.. DESTADDR=.. DESTPORT=..`` from a peer with
    ``allow_xclient``; answered with the banner again, as KumoMTA and Postfix do."""
    if not session.config.allow_xclient:
        await session.reply(550, "5.7.0 insufficient authorization")
        return
    if session.txn is not None:
        await session.reply(503, "5.5.1 mail transaction in progress")
        return
    try:
        peer, local = parse_xclient(arg, session)
    except ValueError as exc:
        await session.syntax_error(501, f"5.5.4 {exc}")
        return
    move_session(session, peer, local)
    if not await session.refresh_parameters():  # smtp_server_get_dynamic_parameters
        return
    await session.reply(220, f"{session.config.hostname} {session.config.banner}")
