"""SOCKS5 (RFC 1928) and its username/password sub-negotiation (RFC 1929), server side.

Every field has a length fixed by the RFCs (at most 255 methods, a 255-byte name or
password, a 255-byte domain), and each read asks for exactly the bytes the previous field
announced, so a client cannot make the server buffer more than about 520 bytes per step.
Malformed input raises :class:`ProtocolError`; the session then closes the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 5
AUTH_VERSION = 1


class Method(IntEnum):
    NO_AUTH = 0x00
    USERNAME_PASSWORD = 0x02
    NO_ACCEPTABLE = 0xFF


class Command(IntEnum):
    CONNECT = 0x01
    BIND = 0x02
    UDP_ASSOCIATE = 0x03


class Status(IntEnum):
    """Reply codes, named as KumoMTA's socksv5 crate names them."""

    SUCCESS = 0x00
    SERVER_FAILURE = 0x01
    CONNECTION_NOT_ALLOWED = 0x02
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04


class ProtocolError(Exception):
    """The client broke the protocol; ``status`` is the reply owed first, if any."""

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Request:
    command: int
    #: An IP address, or a domain name (``is_domain``), which the proxy refuses: the MTA
    #: resolves names itself.
    host: str
    port: int
    is_domain: bool = False


async def _exactly(reader: asyncio.StreamReader, size: int, what: str) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(f"connection closed while reading the {what}") from exc


async def read_greeting(reader: asyncio.StreamReader) -> set[int]:
    """The client's VER NMETHODS METHODS: the methods it offers."""
    version, count = await _exactly(reader, 2, "greeting")
    if version != VERSION:
        raise ProtocolError(f"not a SOCKS5 greeting (version byte {version:#04x})")
    return set(await _exactly(reader, count, "greeting's methods"))


def method_reply(method: Method) -> bytes:
    return bytes((VERSION, method))


async def read_credentials(reader: asyncio.StreamReader) -> tuple[str, str]:
    """RFC 1929's VER ULEN UNAME PLEN PASSWD."""
    version, ulen = await _exactly(reader, 2, "authentication request")
    if version != AUTH_VERSION:
        raise ProtocolError(f"not an RFC 1929 request (version byte {version:#04x})")
    username = await _exactly(reader, ulen, "username")
    (plen,) = await _exactly(reader, 1, "password length")
    password = await _exactly(reader, plen, "password")
    try:
        return username.decode(), password.decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError("username or password is not UTF-8") from exc


def auth_reply(success: bool) -> bytes:
    return bytes((AUTH_VERSION, 0x00 if success else 0x01))


async def read_request(reader: asyncio.StreamReader) -> Request:
    """VER CMD RSV ATYP DST.ADDR DST.PORT."""
    version, command, _reserved, atyp = await _exactly(reader, 4, "request")
    if version != VERSION:
        raise ProtocolError(f"not a SOCKS5 request (version byte {version:#04x})")
    if atyp == ATYP_IPV4:
        host = str(ipaddress.IPv4Address(await _exactly(reader, 4, "IPv4 address")))
    elif atyp == ATYP_IPV6:
        host = str(ipaddress.IPv6Address(await _exactly(reader, 16, "IPv6 address")))
    elif atyp == ATYP_DOMAIN:
        (length,) = await _exactly(reader, 1, "domain length")
        name = await _exactly(reader, length, "domain")
        (port,) = struct.unpack("!H", await _exactly(reader, 2, "port"))
        return Request(command, name.decode("ascii", "replace"), port, is_domain=True)
    else:
        raise ProtocolError(f"unknown address type {atyp:#04x}",
                            Status.ADDRESS_TYPE_NOT_SUPPORTED)  # fmt: skip
    (port,) = struct.unpack("!H", await _exactly(reader, 2, "port"))
    return Request(command, host, port)


def request_reply(status: Status, address: tuple[str, int] | None = None) -> bytes:
    """The reply to a request: ``address`` is the bound or connected-from address;
    failures carry 0.0.0.0:0 as in KumoMTA."""
    host, port = address if address is not None else ("0.0.0.0", 0)
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
    return bytes((VERSION, status, 0, atyp)) + ip.packed + struct.pack("!H", port)
