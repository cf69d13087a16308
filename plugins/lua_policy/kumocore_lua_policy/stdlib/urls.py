"""``kumo.http.build_url(base, params)``: a URL with GET parameters appended.

KumoMTA parses ``base`` with the WHATWG URL rules and appends the parameters
``application/x-www-form-urlencoded`` (space as ``+``; letters, digits and ``*-._`` kept,
every other byte ``%XX``), after any query already there, before any fragment. The
``?`` is added even when there are no parameters, as KumoMTA's URL library does. The
parameters are added in key order: KumoMTA's come from a hash map, in no fixed order.

The base URL is normalised as a browser would for the common cases: scheme and (for
http, https, ws, wss, ftp, file) host in lower case, the scheme's default port dropped,
an empty path of those schemes written ``/``, spaces and other unsafe characters of path,
query and fragment percent-encoded. A base without a scheme is refused with KumoMTA's
text, ``relative URL without a base``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from kumocore import ConfigError

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.DOTALL)
_SPECIAL_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "file": None}
_FORM_SAFE = frozenset((string.ascii_letters + string.digits + "*-._").encode())
# What the WHATWG percent-encode sets leave alone in each part, beyond letters and digits.
_PATH_UNSAFE = frozenset(b' "#<>?`{}')
_QUERY_UNSAFE = frozenset(b" \"#<>'")
_FRAGMENT_UNSAFE = frozenset(b' "<>`')


def _encode(text: str, unsafe: frozenset[int]) -> str:
    """``text`` with controls, non-ASCII and ``unsafe`` bytes percent-encoded; existing
    ``%XX`` escapes stay as written."""
    return "".join(
        f"%{byte:02X}" if byte < 0x21 or byte > 0x7E or byte in unsafe else chr(byte)
        for byte in text.encode())


def form_encode(text: str) -> str:
    return "".join(
        chr(byte) if byte in _FORM_SAFE else "+" if byte == 0x20 else f"%{byte:02X}"
        for byte in text.encode())


def _authority(scheme: str, authority: str) -> str:
    userinfo, at, hostport = authority.rpartition("@")
    host, colon, port = hostport, "", ""
    if not hostport.endswith("]") and ":" in hostport:
        host, colon, port = hostport.rpartition(":")
    if scheme != "file" and not host:
        raise ValueError("empty host")
    if port and not (port.isdigit() and int(port) <= 65535):
        raise ValueError("invalid port number")
    if port and int(port) == _SPECIAL_PORTS[scheme]:
        colon = port = ""
    elif port:
        port = str(int(port))
    return f"{userinfo}{at}{host.lower()}{colon}{port}"


def normalize_base(base: str) -> tuple[str, str | None, str | None]:
    """``base`` split into (scheme://authority/path, query or None, fragment or None)."""
    found = _SCHEME.fullmatch(base.strip(" \t\n\r\x0c\x00"))
    if found is None:
        raise ValueError("relative URL without a base")
    scheme, rest = found.group(1).lower(), found.group(2)
    rest, hash_mark, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    if scheme in _SPECIAL_PORTS:
        rest = rest.replace("\\", "/")
        if scheme == "file" and not rest.startswith("//"):
            authority, path = "", rest.lstrip("/")  # file:/etc/x has no host
        else:
            # Web schemes skip any number of slashes before the host; file takes two.
            rest = rest[2:] if scheme == "file" else rest.lstrip("/")
            authority, _, path = rest.partition("/")
        head = f"{scheme}://{_authority(scheme, authority)}/{_encode(path, _PATH_UNSAFE)}"
    else:
        head = f"{scheme}:{_encode(rest, _PATH_UNSAFE)}"
    return (head, _encode(query, _QUERY_UNSAFE) if question else None,
            _encode(fragment, _FRAGMENT_UNSAFE) if hash_mark else None)


def _param_text(value: Any, what: str) -> str:
    # Lua numbers become their decimal text, as KumoMTA's conversion to a string does.
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"kumo.http.build_url: parameter {what} must be a string or a number, "
                      f"got {value!r}")


def build_url(base: Any, params: Any = None) -> str:
    """``base`` with ``params`` (a table, required) appended as form-encoded GET parameters,
    in key order: ``build_url('https://example.com/?x=1', { a = 1 })`` ->
    ``https://example.com/?x=1&a=1``."""
    if not isinstance(base, str):
        raise ConfigError(f"kumo.http.build_url: the base URL must be a string, got {base!r}")
    if isinstance(params, list):  # a Lua sequence: keys 1..n
        params = {i + 1: value for i, value in enumerate(params)}
    if not isinstance(params, Mapping):
        raise ConfigError("kumo.http.build_url: PARAMS must be a table of name = value")
    pairs = sorted((_param_text(k, "name"), _param_text(v, repr(k))) for k, v in params.items())
    head, query, fragment = normalize_base(base)
    added = "&".join(f"{form_encode(k)}={form_encode(v)}" for k, v in pairs)
    query = added if not query else f"{query}&{added}" if added else query
    return f"{head}?{query}" + ("" if fragment is None else f"#{fragment}")


def url_functions() -> dict[str, Callable[..., Any]]:
    return {"http.build_url": build_url}
