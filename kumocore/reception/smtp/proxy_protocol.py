"""The HAProxy PROXY protocol, versions 1 (text) and 2 (binary).

Used both ways: the ESMTP listener reads a header from peers whose ``peer`` block sets
``require_proxy_protocol`` (KumoMTA's option) to learn the real client's address, and
the delivery client writes a v2 header to an ``ha_proxy_server`` to tell HAProxy which
source address to send from and where to connect.

Reading is strict and bounded: a v1 line is at most 107 bytes (the spec's maximum), a
v2 header at most 16 + 536 bytes here (an address block for AF_UNIX plus room for
TLVs); anything malformed raises :class:`ProxyHeaderError` and the connection is closed
without a banner, as KumoMTA does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from dataclasses import dataclass

from kumocore.digits import port_number

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX_LINE = 107  # the spec's "worst case" v1 line, CRLF included
V2_MAX_PAYLOAD = 536  # addresses (<= 216 bytes for AF_UNIX) plus a few TLVs

_CMD_LOCAL = 0x20
_CMD_PROXY = 0x21
_FAMILY_TCP4 = 0x11
_FAMILY_TCP6 = 0x21


class ProxyHeaderError(ValueError):
    """The peer sent no valid PROXY protocol header."""


@dataclass(frozen=True)
class ProxiedAddresses:
    """What a PROXY header says; ``None`` fields for ``LOCAL``/``UNKNOWN`` (the proxy's
    own connection, e.g. a health check: the socket's addresses stay in force)."""

    source: tuple[str, int] | None
    destination: tuple[str, int] | None


def encode_v2(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A v2 ``PROXY`` header for a TCP stream from ``source`` to ``destination``."""
    src_ip = ipaddress.ip_address(source[0])
    dst_ip = ipaddress.ip_address(destination[0])
    if src_ip.version != dst_ip.version:
        raise ValueError(
            f"PROXY header: source {src_ip} and destination {dst_ip} are of different "
            "IP versions")
    family = _FAMILY_TCP4 if src_ip.version == 4 else _FAMILY_TCP6
    body = src_ip.packed + dst_ip.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + struct.pack("!BBH", _CMD_PROXY, family, len(body)) + body


async def read_header(reader: asyncio.StreamReader) -> ProxiedAddresses:
    """Read and parse one v1 or v2 header (the caller bounds the time)."""
    try:
        first = await reader.readexactly(len(V1_PREFIX))
        if first == V1_PREFIX:
            return await _read_v1(reader, first)
        if first == V2_SIGNATURE[: len(first)]:
            return await _read_v2(reader, first)
    except asyncio.IncompleteReadError as exc:
        raise ProxyHeaderError("connection closed before a complete PROXY header") from exc
    raise ProxyHeaderError("no PROXY protocol header")


async def _read_v1(reader: asyncio.StreamReader, first: bytes) -> ProxiedAddresses:
    line = first
    while not line.endswith(b"\r\n"):
        if len(line) >= V1_MAX_LINE:
            raise ProxyHeaderError("PROXY v1 line too long")
        line += await reader.readexactly(1)
    return parse_v1(line)


def parse_v1(line: bytes) -> ProxiedAddresses:
    """``PROXY TCP4 src dst sport dport\\r\\n`` (or ``PROXY UNKNOWN ...``)."""
    try:
        fields = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError as exc:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from exc
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxiedAddresses(None, None)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"malformed PROXY v1 line: {line[:V1_MAX_LINE]!r}")
    version = 4 if fields[1] == "TCP4" else 6
    source = (_ip(fields[2], version), _port(fields[4]))
    destination = (_ip(fields[3], version), _port(fields[5]))
    return ProxiedAddresses(source, destination)


def _ip(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError as exc:
        raise ProxyHeaderError(f"PROXY header: bad address {text!r}") from exc
    if address.version != version:
        raise ProxyHeaderError(f"PROXY header: {text} is not an IPv{version} address")
    return str(address)


def _port(text: str) -> int:
    port = port_number(text)
    if port is None or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(f"PROXY header: bad port {text!r}")
    return port


async def _read_v2(reader: asyncio.StreamReader, first: bytes) -> ProxiedAddresses:
    rest = await reader.readexactly(len(V2_SIGNATURE) - len(first) + 4)
    head = first + rest
    if head[: len(V2_SIGNATURE)] != V2_SIGNATURE:
        raise ProxyHeaderError("no PROXY protocol header")
    command, family, length = struct.unpack("!BBH", head[len(V2_SIGNATURE):])
    if length > V2_MAX_PAYLOAD:
        raise ProxyHeaderError(f"PROXY v2 header too long ({length} bytes)")
    payload = await reader.readexactly(length)
    return parse_v2(command, family, payload)


def parse_v2(command: int, family: int, payload: bytes) -> ProxiedAddresses:
    if command == _CMD_LOCAL:
        return ProxiedAddresses(None, None)
    if command != _CMD_PROXY:
        raise ProxyHeaderError(f"PROXY v2: unknown version/command byte {command:#04x}")
    if family == _FAMILY_TCP4:
        size, version = 4, 4
    elif family == _FAMILY_TCP6:
        size, version = 16, 6
    else:  # UDP, AF_UNIX, unspecified: not a TCP client we could name
        return ProxiedAddresses(None, None)
    if len(payload) < 2 * size + 4:
        raise ProxyHeaderError("PROXY v2: address block too short")
    src = ipaddress.ip_address(payload[:size])
    dst = ipaddress.ip_address(payload[size: 2 * size])
    sport, dport = struct.unpack("!HH", payload[2 * size: 2 * size + 4])
    assert src.version == version  # the slice size decides it
    return ProxiedAddresses((str(src), sport), (str(dst), dport))
