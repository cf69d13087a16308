"""``mx_list`` entries that name a unix-domain socket instead of a host.

KumoMTA takes an absolute path where it would take an address: ``'/run/lmtp.sock'``,
``'[/run/lmtp.sock]'`` or ``{ name = 'lmtp', addr = '/run/lmtp.sock' }``. No DNS lookup
is made for it; the delivery client connects to the socket
(:mod:`kumocore.delivery.unix_socket`). The path must fit the kernel's ``sun_path``
(108 bytes with its terminating NUL, as on Linux), so a longer one is refused when the
queue configuration is read, not at every delivery attempt.
"""

from __future__ import annotations

import os

#: Bytes of a socket path that fit ``sun_path`` (108 bytes) before its terminating NUL.
SUN_PATH_MAX = 107


def unix_socket_path(text: str) -> str | None:
    """The socket path ``text`` names (bare or in ``[]``), or None when ``text`` names
    no path (a host name, an IP literal). Raises ValueError for a path the kernel cannot
    take: too long for ``sun_path``, or holding a NUL."""
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if not inner.startswith("/"):
        return None
    if "\0" in inner:
        raise ValueError(f"unix domain socket path {inner!r} contains a NUL byte")
    size = len(os.fsencode(inner))
    if size > SUN_PATH_MAX:
        raise ValueError(
            f"unix domain socket path {inner[:60]!r}... is {size} bytes long; "
            f"at most {SUN_PATH_MAX} fit in sun_path"
        )
    return inner


def is_unix_path(address: str | None) -> bool:
    """Whether a target's ``address`` is a socket path (an IP address never starts
    with ``/``)."""
    return address is not None and address.startswith("/")
