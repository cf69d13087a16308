"""``kumo.crypto.aws_sign_v4``: AWS Signature Version 4 for one HTTP request.

The argument table and the result (``authorization``, ``timestamp``, ``signature``,
``canonical_request``, ``string_to_sign``) are KumoMTA's, and so are its choices of what
to sign: the caller's headers (``host`` required) plus ``x-amz-date``, plus
``x-amz-security-token`` with a ``session_token``, plus ``x-amz-content-sha256`` for the
``s3`` service; the ``uri`` is encoded segment by segment as given, never normalized.

Two details follow AWS's published test suite rather than KumoMTA's code, because AWS
checks the signature the way its suite does: every byte outside ``A-Z a-z 0-9 - _ . ~``
is percent-encoded (KumoMTA leaves ``^ ` < > \\ | { }`` as they are), and runs of spaces
and tabs in a header value become one space even between double quotes (KumoMTA keeps
them there).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from kumocore import ConfigError, lua_type_name, policy_function
from kumocore.config.vault import then_with_secrets
from kumocore_lua_policy.byte_strings import takes_bytes
from kumocore_lua_policy.stdlib.clock import Time
from kumocore_lua_policy.stdlib.crypto import key_source_bytes

_WHO = "kumo.crypto.aws_sign_v4"
_REQUIRED = ("access_key", "secret_key", "region", "service", "method", "uri")
_OPTIONAL = ("query_params", "headers", "payload", "timestamp", "session_token")
_ALGORITHM = "AWS4-HMAC-SHA256"


def _text(field: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{_WHO}: {field} must be valid UTF-8") from None
    raise ConfigError(f"{_WHO}: {field} must be a string, got {lua_type_name(value)}")


def _pairs(field: str, value: Any) -> dict[str, str]:
    """A table of string keys and string values (``{}`` when absent)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{_WHO}: {field} must be a table of name = value pairs, got {lua_type_name(value)}"
        )
    return {_text(f"{field} key", k): _text(f"{field}.{k}", v) for k, v in value.items()}


def _when(value: Any) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    if isinstance(value, Time):  # whole seconds are all the signature uses
        return dt.datetime.fromtimestamp(value.unix_timestamp, dt.UTC)
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when.astimezone(dt.UTC)
    raise ConfigError(
        f"{_WHO}: timestamp must be an RFC 3339 time with a zone, such as "
        f"'2015-08-30T12:36:00Z', got {value!r:.80}"
    )


def _encode(text: str) -> str:
    # quote() leaves letters, digits and "_.-~" alone: exactly SigV4's unreserved set.
    return quote(text, safe="")


def canonical_uri(path: str) -> str:
    return "/".join(_encode(segment) for segment in path.split("/")) if path else "/"


def canonical_query(params: Mapping[str, str]) -> str:
    encoded = sorted((_encode(k), _encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in encoded)


def trimall(value: str) -> str:
    """Leading and trailing spaces and tabs dropped, each inner run made one space."""
    return " ".join(part for part in value.replace("\t", " ").split(" ") if part)


def _hmac(key: bytes, data: str) -> bytes:
    return hmac.new(key, data.encode("utf-8"), hashlib.sha256).digest()


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _check_fields(params: Mapping[str, Any]) -> None:
    unknown = sorted(str(k) for k in params if k not in _REQUIRED + _OPTIONAL)
    if unknown:
        raise ConfigError(
            f"{_WHO}: unknown field {unknown[0]!r}, expected one of "
            f"{', '.join(_REQUIRED + _OPTIONAL)}"
        )
    for field in _REQUIRED:
        if params.get(field) is None:
            raise ConfigError(f"{_WHO}: missing field {field!r}")


@policy_function(table=True)
@takes_bytes
def aws_sign_v4(**params: Any) -> Any:
    """`kumo.crypto.aws_sign_v4 { access_key, secret_key, region, service, method, uri,
    query_params, headers, payload, timestamp, session_token }`: the AWS Signature
    Version 4 of one request, as a table of `authorization` (the Authorization header),
    `timestamp` (for X-Amz-Date), `signature`, `canonical_request` and `string_to_sign`.
    The keys are key sources (a file name, `{ key_data = ... }` or HashiCorp Vault);
    `headers` must name `host`; `timestamp` (RFC 3339 text or a `kumo.time` Time)
    defaults to now."""
    _check_fields(params)
    # Keys in HashiCorp Vault make this an awaitable, which Lua waits for.
    return then_with_secrets(
        _WHO,
        [params["access_key"], params["secret_key"]],
        lambda access, secret: sign_v4({**params, "access_key": access, "secret_key": secret}),
        ("access_key", "secret_key"),
    )


def sign_v4(params: Mapping[str, Any]) -> dict[str, str]:
    """:func:`aws_sign_v4` once its keys are files or inline data (``request:aws_sign_v4``
    signs synchronously with it)."""
    _check_fields(params)
    access_key = _text("access_key", key_source_bytes(_WHO, "access_key", params["access_key"]))
    secret_key = _text("secret_key", key_source_bytes(_WHO, "secret_key", params["secret_key"]))
    region, service, method, uri = (
        _text(field, params[field]) for field in ("region", "service", "method", "uri")
    )
    payload = params.get("payload")
    body = (
        b""
        if payload is None
        else payload
        if isinstance(payload, bytes)
        else _text("payload", payload).encode("utf-8")
    )
    when = _when(params.get("timestamp"))
    amz_date, date = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()

    given = _pairs("headers", params.get("headers"))
    headers = {name.lower(): given[name] for name in sorted(given)}
    if "host" not in headers:
        raise ConfigError(f"{_WHO}: headers must include 'host'")
    headers["x-amz-date"] = amz_date
    if params.get("session_token") is not None:
        headers["x-amz-security-token"] = _text("session_token", params["session_token"])
    if service == "s3":  # S3 wants the payload hash signed; other services do not
        headers["x-amz-content-sha256"] = payload_hash
    names = sorted(headers)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        [
            method,
            canonical_uri(uri),
            canonical_query(_pairs("query_params", params.get("query_params"))),
            *(f"{name}:{trimall(headers[name])}" for name in names),
            "",
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            _ALGORITHM,
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    signature = hmac.new(
        _signing_key(secret_key, date, region, service),
        string_to_sign.encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    return {
        "authorization": f"{_ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}",
        "timestamp": amz_date,
        "signature": signature,
        "canonical_request": canonical_request,
        "string_to_sign": string_to_sign,
    }


def sigv4_functions() -> dict[str, Any]:
    return {"crypto.aws_sign_v4": aws_sign_v4}
