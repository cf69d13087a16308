"""The headers of one MIME part: KumoMTA's ``Header`` and ``HeaderMap`` objects.

A parsed header keeps its exact text (name, separator, folded value, line ending), so a
part whose headers are not changed is written back byte for byte. ``hdr.value`` is the
structured reading KumoMTA gives for the header's name (an address list for ``To``, MIME
parameters for ``Content-Type``...; unstructured text otherwise).

Setters (``set_to``, ``set_content_type``...) replace the first header of that name where
it stands, keeping its spelling, or append one; a string is validated by reading it back
as that structure and refused with an "invalid header" error. ``append``/``prepend`` take
any text: ASCII is re-wrapped (75 columns soft, 900 hard), anything else RFC 2047 encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kumocore.mail import mime_header_values as hv
from kumocore.mail.mime_auth_results import parse_authentication_results
from kumocore.mail.mime_codec import header_qp_encode, wrap_header

__all__ = ["Header", "HeaderMap"]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _visible(text: str) -> str:
    """Header text as policies get it: bytes that are not UTF-8 shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class Header:
    """One header; fields ``name``, ``raw_value``, ``value`` and the typed readings."""

    __slots__ = ("_raw", "_sep", "name", "nl")

    def __init__(self, name: str, raw: str, sep: str = ": ", nl: str = "\r\n") -> None:
        self.name = name
        self._raw = raw
        self._sep = sep
        self.nl = nl

    @classmethod
    def unstructured_text(cls, name: str, value: Any) -> Header:
        text = _text(value)
        return cls(name, wrap_header(text) if text.isascii() else header_qp_encode(text))

    @property
    def raw_value(self) -> str:
        return _visible(self._raw)

    @property
    def _readable(self) -> str:
        # What the structured readings read: bytes that are not UTF-8 (a sender's raw
        # Latin-1 display name) as U+FFFD, as in ``raw_value``; read as they are, they
        # reached Lua as an "surrogates not allowed" error from the bridge.
        return _visible(self._raw)

    @property
    def unstructured(self) -> str:
        return _visible(hv.unstructured(self._raw))

    @property
    def mime_params(self) -> hv.MimeParams:
        return hv.parse_mime_params(self._raw)

    @property
    def mailbox_list(self) -> list[dict[str, Any]]:
        return hv.parse_address_list(self._readable, groups=False)

    @property
    def address_list(self) -> list[dict[str, Any]]:
        return hv.parse_address_list(self._readable)

    @property
    def mailbox(self) -> dict[str, Any]:
        found = hv.parse_address_list(self._readable, groups=False)
        if len(found) != 1:
            raise hv.HeaderValueError(f"invalid header: {self._raw!r} is not one mailbox")
        return found[0]

    @property
    def message_id(self) -> str:
        return hv.parse_message_id(self._readable, lenient=self.name.lower() == "content-id")

    @property
    def message_id_list(self) -> list[str]:
        return hv.parse_message_ids(self._readable)

    @property
    def authentication_results(self) -> dict[str, Any]:
        return parse_authentication_results(self._readable)

    @property
    def value(self) -> Any:
        reading = _READINGS.get(self.name.lower(), "unstructured")
        return getattr(self, reading)

    def to_bytes(self) -> bytes:
        return f"{self.name}{self._sep}{self._raw}{self.nl}".encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        return _visible(f"{self.name}{self._sep}{self._raw}{self.nl}")

    def __repr__(self) -> str:
        return f"<Header {self.name}>"


_ADDRESS_HEADERS = ("to", "cc", "bcc", "reply-to", "resent-to", "resent-cc", "resent-bcc")
_READINGS = {
    **dict.fromkeys(_ADDRESS_HEADERS, "address_list"),
    "from": "mailbox_list",
    "resent-from": "mailbox_list",
    "sender": "mailbox",
    "resent-sender": "mailbox",
    "message-id": "message_id",
    "content-id": "message_id",
    "references": "message_id_list",
    "content-type": "mime_params",
    "content-disposition": "mime_params",
    "content-transfer-encoding": "mime_params",
    "authentication-results": "authentication_results",
}

# accessor name -> (header name, reading, encoder of a structured value or None)
_Encoder = Callable[[Any], str] | None
_ACCESSORS: dict[str, tuple[str, str, _Encoder]] = {
    "from": ("From", "mailbox_list", hv.encode_address_list),
    "resent_from": ("Resent-From", "mailbox_list", hv.encode_address_list),
    "sender": ("Sender", "mailbox", hv.encode_mailbox),
    "resent_sender": ("Resent-Sender", "mailbox", hv.encode_mailbox),
    "message_id": ("Message-ID", "message_id", lambda v: f"<{v}>"),
    "content_id": ("Content-ID", "message_id", lambda v: f"<{v}>"),
    "references": ("References", "message_id_list", hv.encode_message_ids),
    "subject": ("Subject", "unstructured", None),
    "comments": ("Comments", "unstructured", None),
    "mime_version": ("Mime-Version", "unstructured", None),
    "content_type": ("Content-Type", "mime_params", lambda v: _params(v)),
    "content_disposition": ("Content-Disposition", "mime_params", lambda v: _params(v)),
    "content_transfer_encoding": ("Content-Transfer-Encoding", "mime_params", lambda v: _params(v)),
    **{
        name.replace("-", "_"): (name.title(), "address_list", hv.encode_address_list)
        for name in _ADDRESS_HEADERS
    },
}


def _params(value: Any) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("value"), str):
        raise hv.HeaderValueError("invalid header: MIME parameters are {value=, parameters=}")
    params = value.get("parameters") or {}
    return hv.encode_mime_params(value["value"], {str(k): _text(v) for k, v in params.items()})


class HeaderMap:
    """The ordered headers of one MIME part (several may share a name)."""

    __kumo_methods__ = True  # Lua calls headers:method(...)

    def __init__(self, headers: list[Header] | None = None) -> None:
        self.headers: list[Header] = headers or []

    def get_first_named(self, name: str) -> Header | None:
        wanted = str(name).lower()
        return next((h for h in self.headers if h.name.lower() == wanted), None)

    def named(self, name: str) -> Iterator[Header]:
        wanted = name.lower()
        return (h for h in self.headers if h.name.lower() == wanted)

    def iter(self, name: str | None = None) -> Callable[..., Header | None]:
        """A Lua-style iterator function (``for hdr in headers:iter() do``)."""
        wanted = None if name is None else str(name).lower()
        items = iter([h for h in self.headers if wanted is None or h.name.lower() == wanted])

        def step(*_state: Any) -> Header | None:
            return next(items, None)

        return step

    def append(self, name: str, value: Any) -> None:
        self.headers.append(Header.unstructured_text(str(name), value))

    def prepend(self, name: str, value: Any) -> None:
        self.headers.insert(0, Header.unstructured_text(str(name), value))

    def remove_all_named(self, name: str) -> None:
        wanted = str(name).lower()
        self.headers = [h for h in self.headers if h.name.lower() != wanted]

    def read(self, accessor: str) -> Any:
        header_name, reading, _ = _ACCESSORS[accessor]
        header = self.get_first_named(header_name)
        return None if header is None else getattr(header, reading)

    def assign(self, accessor: str, value: Any) -> None:
        header_name, reading, encoder = _ACCESSORS[accessor]
        existing = self.get_first_named(header_name)
        name = header_name if existing is None else existing.name
        if isinstance(value, str | bytes) or encoder is None:
            header = Header.unstructured_text(name, value)
            getattr(header, reading)  # a string must read back as the structure
        else:
            header = Header(name, encoder(value))
        if existing is None:
            self.headers.append(header)
        else:
            self.headers[self.headers.index(existing)] = header

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # headers:to(), headers:set_to(v)... for every accessor KumoMTA has.
        if name.startswith("set_") and name[4:] in _ACCESSORS:
            return lambda value: self.assign(name[4:], value)
        if name in _ACCESSORS:
            return lambda: self.read(name)
        raise AttributeError(name)

    def to_bytes(self) -> bytes:
        return b"".join(h.to_bytes() for h in self.headers)

    def __str__(self) -> str:
        return "".join(str(h) for h in self.headers)

    def __len__(self) -> int:
        return len(self.headers)


# Lua may pass non-UTF-8 header text: the Lua plugin's mark for methods taking byte
# strings (kumocore_lua_policy.byte_strings.BYTES_ATTR), set here as core cannot import it.
for _method in (HeaderMap.append, HeaderMap.prepend):
    setattr(_method, "__kumo_bytes__", True)  # noqa: B010 (mypy: no attribute on functions)
