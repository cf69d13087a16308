"""HTTP listener options: ``kumo.start_http_listener`` (message injection, the admin API).

Defaults are KumoMTA's (kumo-server-common http_server), plus kumocore's own bounds on
what one peer may hold open and for how long (docs/http-api.md, "Limits").

Its own module because it is a ``kumo.*`` function's options of its own, apart from the
ESMTP listener's (:mod:`kumocore.config.listeners`).
"""

from __future__ import annotations

import socket
from typing import Any

from kumocore.config.cidr import CidrSet, split_host_port
from kumocore.config.converters import (
    BOOL,
    CIDRS,
    DURATION,
    KEY_SOURCE,
    SIZE,
    SOCKET_ADDRESS,
    STRING,
    THROTTLE,
    integer,
)
from kumocore.config.options import Options, option
from kumocore.throttle.spec import ThrottleSpec


class HttpListenerConfig(Options, options_for="kumo.start_http_listener"):
    """One HTTP listener (``kumo.start_http_listener``): injection and admin API."""

    listen: str = option(SOCKET_ADDRESS, default="127.0.0.1:8000")
    hostname: str = option(STRING, default_factory=socket.gethostname)
    use_tls: bool = option(BOOL, default=False)
    tls_certificate: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    tls_private_key: str | dict[str, Any] | None = option(KEY_SOURCE, default=None)
    trusted_hosts: CidrSet = option(CIDRS, default=["127.0.0.1", "::1"])
    request_body_limit: int = option(SIZE, default="2 MiB")
    # kumocore additions (docs/http-api.md "Limits"): what one peer may hold open and for
    # how long, so that slow or silent clients cannot use up the process's descriptors.
    max_connections: int = option(integer(1), default=1024)
    max_connections_per_peer: int = option(integer(1), default=64)
    # New connections per client (trusted_hosts exempt), as the ESMTP listener's; off by
    # default, as there (kumocore.reception.connection_rates).
    max_connection_rate_per_peer: ThrottleSpec | None = option(THROTTLE, default=None)
    header_timeout: float = option(DURATION, default="10s")
    keepalive_timeout: float = option(DURATION, default="30s")
    request_body_timeout: float = option(DURATION, default="30s")
    response_write_timeout: float = option(DURATION, default="30s")
    auth_failure_limit: int = option(integer(1), default=10)
    auth_failure_window: float = option(DURATION, default="60s")
    inject_generated_size_limit: int = option(SIZE, default="256 MiB")
    max_rendered_size: int = option(SIZE, default="20 MiB")
    # kumocore addition: injected mail without a Message-ID gets one (Gmail refuses mail
    # without it); false keeps KumoMTA's behaviour of adding none.
    generate_message_id: bool = option(BOOL, default=True)

    def listen_host_port(self) -> tuple[str, int]:
        """``listen`` split into (host, port); IPv6 hosts come without brackets."""
        return split_host_port(self.listen)
