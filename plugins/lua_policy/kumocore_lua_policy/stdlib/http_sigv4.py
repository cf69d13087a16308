"""``request:aws_sign_v4 { ... }`` on ``kumo.http`` requests, as in KumoMTA 2026.03.04.

A wrapper around :func:`~kumocore_lua_policy.stdlib.sigv4.aws_sign_v4` that takes the
method, the URL path and the query parameters from the request, adds a ``host`` header
when the caller's ``headers`` lack one, and sets the result on the request. As in KumoMTA,
the body is not read: pass the body as ``payload`` to have it signed, and only the
``headers`` given (plus ``host``) are signed.

Two differences make the signature one AWS accepts where KumoMTA's would not: the ``host``
keeps a port that is not the scheme's default (it is part of the Host header the client
sends, which the server signs too), and the other signed ``x-amz-*`` headers
(``X-Amz-Security-Token`` with a ``session_token``, ``X-Amz-Content-Sha256`` for ``s3``)
are set on the request along with ``Authorization`` and ``X-Amz-Date``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kumocore import ConfigError
from kumocore.http.client import set_aws_signer
from kumocore_lua_policy.stdlib.sigv4 import sign_v4

_WHO = "request:aws_sign_v4"
#: The fields of kumo.crypto.aws_sign_v4 a request does not supply itself.
_FIELDS = ("access_key", "secret_key", "region", "service", "headers", "payload",
           "timestamp", "session_token")  # fmt: skip
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host(url: str) -> str:
    """The Host header the client sends for ``url``: no userinfo, no default port."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is not None and host.endswith(f":{default}"):
        host = host[: -len(f":{default}")]
    return host


def sign_request(method: str, url: str, params: Any) -> dict[str, str]:
    """The headers that sign ``method url`` with ``params`` (see the module docstring)."""
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"{_WHO} takes one table: req:aws_sign_v4 {{ access_key = ..., "
            "secret_key = ..., region = ..., service = ... }"
        )
    unknown = sorted(str(key) for key in params if key not in _FIELDS)
    if unknown:
        raise ConfigError(
            f"{_WHO}: unknown field {unknown[0]!r}, expected one of {', '.join(_FIELDS)}"
        )
    given = params.get("headers") or {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{_WHO}: headers must be a table of name = value pairs")
    headers = dict(given)
    if not any(str(name).lower() == "host" for name in headers):
        headers["host"] = _host(url)
    parts = urlsplit(url)
    fields = {key: value for key, value in params.items() if key != "headers"}
    signed = sign_v4({
        **fields, "headers": headers, "method": method, "uri": parts.path or "/",
        "query_params": dict(parse_qsl(parts.query, keep_blank_values=True)),
    })  # fmt: skip
    out = {"Authorization": signed["authorization"], "X-Amz-Date": signed["timestamp"]}
    if params.get("session_token") is not None:
        out["X-Amz-Security-Token"] = params["session_token"]  # a string: it was signed
    if params.get("service") == "s3":  # the hash aws_sign_v4 signed for s3
        out["X-Amz-Content-Sha256"] = signed["canonical_request"].rpartition("\n")[2]
    return out


def install() -> None:
    """Make ``request:aws_sign_v4`` sign with this module (see kumocore.http.client)."""
    set_aws_signer(sign_request)
