"""HTTP URL resources: the resource names an ACL check on a request walks, most specific
first (KumoMTA's ``HttpEndpointResource``).

For the listener at ``127.0.0.1:8000`` and ``/api/admin/bounce/v1``::

    http_listener/127.0.0.1:8000/api/admin/bounce/v1   ... down to
    http_listener/127.0.0.1:8000
    http_listener/*/api/admin/bounce/v1                ... down to
    http_listener/*/api
    http_listener

The first resource whose ACL has a matching rule decides. Like KumoMTA, only the first
:data:`MAX_ACL_PATH_LEN` characters and :data:`MAX_ACL_PATH_COMPONENTS` segments of the
path count, so a hostile client cannot make one request cost many lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from kumocore.config.cidr import join_host_port
from kumocore.errors import ConfigError

MAX_ACL_PATH_LEN = 256
MAX_ACL_PATH_COMPONENTS = 10


@dataclass(frozen=True, slots=True)
class HttpUrlResource:
    """``resource_id`` is the exact name; ``candidates`` the names an ACL check walks."""

    resource_id: str
    candidates: tuple[str, ...]


def format_local_addr(host: str, port: int) -> str:
    """``127.0.0.1:8000`` / ``[::1]:8000``: a socket address as KumoMTA prints it."""
    return join_host_port(host, port)


def http_url_resource(local_addr: str, path: str) -> HttpUrlResource:
    """The resource for ``path`` (starting with ``/``) on the listener at ``local_addr``."""
    path = path[:MAX_ACL_PATH_LEN]
    components = path[1:].split("/", MAX_ACL_PATH_COMPONENTS)[:MAX_ACL_PATH_COMPONENTS]
    with_addr: list[str] = []
    wildcard: list[str] = []
    while components:
        joined = "/".join(components)
        with_addr.append(f"http_listener/{local_addr}/{joined}")
        wildcard.append(f"http_listener/*/{joined}")
        components.pop()
    names = (*with_addr, f"http_listener/{local_addr}", *wildcard, "http_listener")
    return HttpUrlResource(names[0], names)


def make_http_url_resource(local_addr: str, url: str) -> HttpUrlResource:
    """``kumo.aaa.make_http_url_resource(LOCAL_ADDR, HTTP_URL)``."""
    host, sep, port = str(local_addr).rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"make_http_url_resource: {local_addr!r:.80} is not an address:port")
    try:
        parts = urlsplit(str(url))
    except ValueError as exc:
        raise ConfigError(f"make_http_url_resource: {exc}") from None
    if not parts.scheme or not parts.netloc:
        raise ConfigError(f"make_http_url_resource: {url!r:.80} is not an absolute URL")
    return http_url_resource(format_local_addr(host.strip("[]"), int(port)), parts.path or "/")
