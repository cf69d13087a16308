"""``proxy.start_proxy_listener``'s options (KumoMTA's ProxyListenerParams).

Every KumoProxy option is accepted with its meaning; an unknown one is refused naming it.
``use_splice`` is accepted and has no effect: KumoMTA documents splice(2) as a CPU
optimisation of the same byte copy, which asyncio has no way to ask for; the relay
copies through bounded user-space buffers either way (docs/proxy-server.md).

``max_connections`` is kumocore's own bound: KumoProxy has none, so a flood of clients
could use up the process's descriptors.
"""

from __future__ import annotations

import socket
from typing import Any

from kumocore.config.conv import Conv, Path
from kumocore.config.converters import BOOL, DURATION, KEY_SOURCE, SOCKET_ADDRESS, STRING, integer
from kumocore.config.options import Options, nested, option

START_PROXY_LISTENER = "proxy.start_proxy_listener"


#: Linux refuses TCP_KEEPIDLE and TCP_KEEPINTVL past this many seconds.
MAX_PROBE_SECONDS = 32767


def _probe_seconds(value: Any, path: Path) -> float:
    # Checked here: the kernel's EINVAL would otherwise fail every client at accept.
    seconds: float = DURATION.load(value, path)
    if not 1 <= seconds <= MAX_PROBE_SECONDS:
        raise path.invalid(f"expected 1 to {MAX_PROBE_SECONDS} seconds (Linux's range)", value)
    return seconds


PROBE_SECONDS = Conv(_probe_seconds, dump=DURATION.dump)


class TcpKeepalive(Options, options_for=START_PROXY_LISTENER):
    """``tcp_keepalive``: probes on idle client and destination sockets, so that a dead
    peer's connection ends instead of holding descriptors for ever."""

    enabled: bool = option(BOOL, default=True)
    time: float = option(PROBE_SECONDS, default="5 minutes")
    interval: float = option(PROBE_SECONDS, default="30 seconds")
    retries: int = option(integer(1, 127), default=3)


class ProxyListenerConfig(Options, options_for=START_PROXY_LISTENER):
    """One SOCKS5 listener."""

    listen: str = option(SOCKET_ADDRESS)
    hostname: str = option(STRING, default_factory=socket.gethostname)
    #: Each handshake step, request and reply must complete within it.
    timeout: float = option(DURATION, default="60 seconds")
    use_splice: bool = option(BOOL, default=True)
    use_tls: bool = option(BOOL, default=False)
    tls_certificate: str | dict[str, object] | None = option(KEY_SOURCE, default=None)
    tls_private_key: str | dict[str, object] | None = option(KEY_SOURCE, default=None)
    require_auth: bool = option(BOOL, default=False)
    tcp_keepalive: TcpKeepalive = option(nested(TcpKeepalive), default={})
    # kumocore addition: clients served at once by this listener; one past it is closed
    # as soon as it is accepted.
    max_connections: int = option(integer(1), default=32768)
