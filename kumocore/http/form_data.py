"""The ``multipart/form-data`` body of ``request:form_multipart_data { ... }``.

What a field becomes follows KumoMTA (``crates/mod-http``):

* a UTF-8 string: a ``text/plain; charset=utf-8`` part;
* a string that is not UTF-8 (a Lua binary string, Python ``bytes``): an
  ``application/octet-stream`` part;
* a table ``{ data = ..., file_name = ... }``: a file upload, an
  ``application/octet-stream`` part whose ``Content-Disposition`` names the file;
* anything else (a number, a boolean, another table) is an error.

The wire form is RFC 7578's, not a mail message's: values go as their raw bytes, with no
``Content-Transfer-Encoding`` (KumoMTA builds the body with a mail library, which
base64-encodes binary parts and may quoted-printable text; receivers that ignore that
header, as RFC 7578 lets them, would see the encoded text). Quotes and line breaks in
field and file names are percent-escaped as browsers do, so a name cannot end its header.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from kumocore.errors import ConfigError

_WHO = "kumo.http: request:form_multipart_data"
_FILE_KEYS = ("data", "file_name")


def _quoted(name: str) -> str:
    """``name`` as a quoted-string parameter value (WHATWG's escapes for form data)."""
    return '"' + name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A") + '"'


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _file_part(name: str, value: Mapping[Any, Any]) -> tuple[str, str, bytes]:
    """A file upload: its disposition, content type and bytes."""
    data, file_name = value.get("data"), value.get("file_name")
    if not isinstance(data, str | bytes) or not isinstance(file_name, str):
        raise ConfigError(
            f"{_WHO}: field {name!r}: a file is a table of data = string and "
            f"file_name = string, got {dict(value)!r:.80}"
        )
    disposition = f"form-data; name={_quoted(name)}; filename={_quoted(file_name)}"
    return disposition, "application/octet-stream", _bytes(data)


def _part(name: Any, value: Any) -> tuple[str, str, bytes]:
    """One field: its ``Content-Disposition``, ``Content-Type`` and body."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    if not isinstance(name, str):
        raise ConfigError(f"{_WHO}: field names must be strings, got {name!r:.40}")
    if isinstance(value, Mapping):
        return _file_part(name, value)
    disposition = f"form-data; name={_quoted(name)}"
    if isinstance(value, str):
        return disposition, "text/plain; charset=utf-8", value.encode("utf-8")
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return disposition, "application/octet-stream", value
        return disposition, "text/plain; charset=utf-8", value
    raise ConfigError(
        f"{_WHO}: field {name!r} must be a string or a table of data and file_name, "
        f"got {value!r:.40}"
    )


def _boundary(bodies: list[bytes]) -> str:
    """A random boundary found in none of the values (128 random bits: a clash would be
    deliberate, and then another is drawn)."""
    while True:
        boundary = "kumo-" + secrets.token_hex(16)
        marker = boundary.encode("ascii")
        if not any(marker in body for body in bodies):
            return boundary


def encode_form_data(params: Any) -> tuple[str, bytes]:
    """The ``Content-Type`` (with its boundary) and the body for ``params``."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{_WHO} takes a table of name = value")
    parts = [_part(name, value) for name, value in params.items()]
    boundary = _boundary([body for _, _, body in parts])
    out = bytearray()
    for disposition, content_type, body in parts:
        out += (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        out += body + b"\r\n"
    out += f"--{boundary}--\r\n".encode("ascii")
    return f'multipart/form-data; boundary="{boundary}"', bytes(out)
