"""One configured name server, with KumoMTA's per-server ``protocol`` and ``bind_addr``.

dnspython's ``Do53Nameserver`` asks over UDP and repeats a truncated answer's query over
TCP, which is KumoMTA's default ``protocol = 'udp_then_tcp'``. ``'tcp'`` asks over TCP
only; ``'udp'`` never opens TCP, so a truncated reply counts as that server failing (the
next server is tried). ``bind_addr`` is the local address the queries leave from.
"""

from __future__ import annotations

from typing import Any

import dns.nameserver

from kumocore.dns.name_server import parse_name_server
from kumocore.dns.resolver_config import NameServerSpec


class _Upstream(dns.nameserver.Do53Nameserver):
    def __init__(
        self, address: str, port: int, protocol: str, bind: tuple[str, int] | None
    ) -> None:
        super().__init__(address, port)
        self.protocol = protocol
        self.bind = bind

    def is_always_max_size(self) -> bool:
        return self.protocol == "tcp"  # dnspython then goes straight to TCP

    async def async_query(
        self,
        request: Any,
        timeout: float,
        source: str | None,
        source_port: int,
        max_size: bool,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if max_size and self.protocol == "udp":
            # The UDP reply was truncated; 'udp' allows no TCP retry. NotImplementedError
            # makes dnspython drop this server for the lookup and try the next.
            raise NotImplementedError(f"{self} answered truncated and protocol is 'udp'")
        if self.bind is not None:
            source, source_port = self.bind
        return await super().async_query(
            request, timeout, source, source_port, max_size, *args, **kwargs
        )


def make_upstream(spec: NameServerSpec) -> dns.nameserver.Do53Nameserver:
    """The dnspython name server for one ``name_servers`` entry."""
    server = parse_name_server(spec.socket_addr)
    bind = None
    if spec.bind_addr is not None:
        local = parse_name_server(spec.bind_addr, min_port=0)
        text = spec.bind_addr.strip()
        has_port = "]:" in text if text.startswith("[") else text.count(":") == 1
        bind = (local.address, local.port if has_port else 0)
    if spec.protocol == "udp_then_tcp" and bind is None:
        return server
    return _Upstream(server.address, server.port, spec.protocol, bind)
