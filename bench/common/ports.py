"""Free TCP ports for the servers that tests and benchmarks start.

A port the kernel hands out for ``bind(0)`` comes from its ephemeral range, the same range
every outgoing connection takes its local port from. Between the moment a test asks for a
free port and the moment its server binds it (a kumocore start can take seconds), a
client of another test running in parallel may take that port for a connection, and the
server then fails with "Address already in use". The ports given here lie below that
range, where no outgoing connection goes; only two of these calls picking the same port
at once could meet, and the check below makes that rare.
"""

from __future__ import annotations

import random
import socket

__all__ = ["free_port"]

#: The lowest port handed out (well above the ports of system services).
LOWEST = 10_000
_EPHEMERAL_DEFAULT = (32_768, 60_999)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (``net.ipv4.ip_local_port_range``)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as source:
            low, high = (int(field) for field in source.read().split())
    except (OSError, ValueError):
        return _EPHEMERAL_DEFAULT
    return low, high


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing is bound to now, below the ephemeral range
    (the kernel's choice only if that range leaves no room below it, or none is free)."""
    low, _ = ephemeral_range()
    if low - LOWEST >= 1_000:
        for _ in range(100):
            port = random.randrange(LOWEST, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:  # taken, or in TIME_WAIT: try another
                    continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
