"""The message object that policies see: envelope, meta, and raw RFC 5322 bytes.

One Message has one recipient, as in KumoMTA. The body is kept as the bytes received and
never MIME-parsed; the header block is parsed lazily on the first header lookup and the
parse is cached until ``data`` changes. Method names match KumoMTA's Lua message API
(``msg:get_first_named_header_value(...)``) so Lua and Python policies read the same.

For the spool a message is two records under its id: the data (the bytes) and the meta
(:meth:`Message.meta_bytes`, compact JSON of envelope, meta and schedule).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from kumocore import headers as _h
from kumocore.address import (
    NULL_SENDER,
    AddressError,
    AddressHeader,
    EnvelopeAddress,
    HeaderAddress,
    parse_address_header,
    parse_envelope_address,
)
from kumocore.ids import new_message_id
from kumocore.message_methods import MessageMethods
from kumocore.queue_name import message_queue_name

__all__ = [
    "AddressHeader",
    "DkimSigner",
    "EnvelopeAddress",
    "HeaderAddress",
    "Message",
    "SpoolRecordError",
]

_SPOOL_VERSION = 1


class SpoolRecordError(ValueError):
    """A spooled meta record cannot be turned back into a Message; names the message id."""

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"corrupt spool record for message {message_id}: {reason}")
        self.id = message_id
        self.reason = reason


class DkimSigner(Protocol):
    """Anything that signs: ``sign(data)`` returns a ``DKIM-Signature: ...\\r\\n`` header."""

    def sign(self, data: bytes) -> bytes: ...


def _address(value: EnvelopeAddress | str, *, allow_null: bool) -> EnvelopeAddress:
    if isinstance(value, EnvelopeAddress):
        return value
    return parse_envelope_address(value, allow_null=allow_null)


def _jsonable(value: Any, where: str) -> Any:
    """``value`` if it survives a JSON round trip unchanged (tuples become lists)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    if isinstance(value, int):
        raise TypeError(f"{where}: integer {value} does not fit in 64 bits")
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise TypeError(f"{where}: {value} is not representable in JSON")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: object keys must be strings, got {k!r}")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-serialisable")


class Message(MessageMethods):
    """A message for one recipient. Attributes are plain; ``data`` is a property.

    More of KumoMTA's methods (scheduling, conformance, DKIM verification, report and MIME
    parsing) come from :class:`kumocore.message_methods.MessageMethods`."""

    __slots__ = ("_data", "_headers", "_size", "created", "due", "id", "meta",
                 "num_attempts", "recipient", "sender")  # fmt: skip

    def __init__(
        self,
        sender: EnvelopeAddress | str,
        recipient: EnvelopeAddress | str,
        data: bytes,
        *,
        id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        created: float | None = None,
        num_attempts: int = 0,
        due: float | None = None,
    ) -> None:
        self.id: str = id or new_message_id()
        self.sender: EnvelopeAddress = _address(sender, allow_null=True)
        self.recipient: EnvelopeAddress = _address(recipient, allow_null=False)
        self._data = bytes(data)
        self._size = len(self._data)
        self._headers: _h.HeaderBlock | None = None
        self.meta: dict[str, Any] = _jsonable(dict(meta), "meta") if meta else {}
        self.created: float = time.time() if created is None else created
        self.num_attempts: int = num_attempts
        self.due: float | None = due

    def __repr__(self) -> str:
        return f"<Message {self.id} {self.sender}->{self.recipient} {len(self._data)} bytes>"

    @property
    def sender_domain(self) -> str:
        return self.sender.domain

    @property
    def recipient_domain(self) -> str:
        return self.recipient.domain

    def set_sender(self, sender: EnvelopeAddress | str) -> None:
        self.sender = _address(sender, allow_null=True)

    def set_recipient(self, recipient: EnvelopeAddress | str) -> None:
        self.recipient = _address(recipient, allow_null=False)

    @property
    def data(self) -> bytes:
        return self._data

    @data.setter
    def data(self, value: bytes | str) -> None:
        self._data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self._size = len(self._data)
        self._headers = None

    def get_data(self) -> bytes:
        return self._data

    def set_data(self, data: bytes | str) -> None:
        self.data = data

    def release_data(self) -> None:
        """Drop the body from memory (it stays in the data spool); ``data`` is then ``b""``.

        ``size`` keeps reporting the released body's length, for logs.
        """
        self._data = b""
        self._headers = None

    @property
    def size(self) -> int:
        return self._size

    def queue_name(self) -> str:
        return message_queue_name(self)

    def _block(self) -> _h.HeaderBlock:
        if self._headers is None:
            self._headers = _h.HeaderBlock(self._data)
        return self._headers

    def get_first_named_header_value(self, name: str) -> str | None:
        field = self._block().get_first(name)
        return None if field is None else field.value

    def get_all_named_header_values(self, name: str) -> list[str]:
        return [f.value for f in self._block().get_all(name)]

    def get_all_headers(self) -> list[tuple[str, str]]:
        return [(f.name, f.value) for f in self._block().fields]

    def get_address_header(self, name: str) -> AddressHeader | None:
        field = self._block().get_first(name)
        return None if field is None else parse_address_header(field.raw_value)

    def from_header(self) -> AddressHeader | None:
        return self.get_address_header("From")

    def to_header(self) -> AddressHeader | None:
        return self.get_address_header("To")

    def prepend_header(self, name: str, value: str, encode: bool = False) -> None:
        self.data = _h.prepend_header(self._data, name, value, encode=encode)

    def append_header(self, name: str, value: str, encode: bool = False) -> None:
        self.data = _h.append_header(self._data, name, value, encode=encode)

    def remove_all_named_headers(self, name: str) -> None:
        data = _h.remove_headers(self._data, name, self._block())
        if data is not self._data:
            self.data = data

    def import_x_headers(self, names: list[str] | None = None) -> None:
        """Copy headers into meta: ``X-Campaign-Id`` becomes ``x_campaign_id``.

        With ``names``, those headers (any name, if present); otherwise every header whose
        name starts with ``X-``. Imported values replace existing meta values; when a
        header occurs twice, the first occurrence wins.
        """
        block = self._block()
        if names is None:
            fields = [f for f in block.fields if f.name.lower().startswith("x-")]
        else:
            fields = [f for f in map(block.get_first, names) if f is not None]
        imported: dict[str, str] = {}
        for field in fields:
            imported.setdefault(_meta_key(field.name), field.value)
        self.meta.update(imported)

    def remove_x_headers(self, names: list[str] | None = None) -> None:
        """Remove the named headers, or every ``X-`` header when ``names`` is None."""
        block = self._block()
        if names is None:
            fields = [f for f in block.fields if f.name.lower().startswith("x-")]
        else:
            fields = [f for name in names for f in block.get_all(name)]
        if fields:
            self.data = _h.remove_fields(self._data, fields)

    def dkim_sign(self, signer: DkimSigner) -> None:
        """Prepend the ``DKIM-Signature`` header that ``signer.sign(data)`` returns."""
        header = signer.sign(self._data)
        if not isinstance(header, bytes) or not header[:15].lower() == b"dkim-signature:":
            raise ValueError(f"DKIM signer returned {header!r:.60}, not a DKIM-Signature header")
        if not header.endswith(b"\n"):
            header += b"\r\n"
        self.data = header + self._data

    def set_meta(self, key: str, value: Any) -> None:
        """Set a meta value; it must survive a JSON round trip (TypeError otherwise)."""
        if not isinstance(key, str):
            raise TypeError(f"meta key must be a string, got {key!r}")
        self.meta[key] = _jsonable(value, f"meta {key!r}")

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)

    def meta_bytes(self) -> bytes:
        """The spool's meta record: compact JSON with a version field."""
        return orjson.dumps(
            {
                "v": _SPOOL_VERSION,
                "sender": self.sender.email,
                "recipient": self.recipient.email,
                "meta": self.meta,
                "created": self.created,
                "num_attempts": self.num_attempts,
                "due": self.due,
                "size": self._size,
            }
        )

    @classmethod
    def from_spool(cls, id: str, meta_bytes: bytes, data_bytes: bytes) -> Message:
        """Rebuild a spooled message; raises :class:`SpoolRecordError` naming ``id``."""
        try:
            rec = orjson.loads(meta_bytes)
        except orjson.JSONDecodeError as exc:
            raise SpoolRecordError(id, f"meta is not JSON ({exc})") from None
        if not isinstance(rec, dict):
            raise SpoolRecordError(id, "meta is not a JSON object")
        if rec.get("v") != _SPOOL_VERSION:
            raise SpoolRecordError(id, f"unsupported meta version {rec.get('v')!r}")
        try:
            sender = _field(rec, "sender", str)
            msg = cls(
                NULL_SENDER if sender == "" else sender,
                _field(rec, "recipient", str),
                data_bytes,
                id=id,
                created=float(_field(rec, "created", (int, float))),
                num_attempts=_field(rec, "num_attempts", int),
                due=None if rec.get("due") is None else float(_field(rec, "due", (int, float))),
            )
            # Parsed JSON is JSON-able by construction: skip set_meta's validating copy.
            msg.meta = _field(rec, "meta", dict)
            if msg.num_attempts < 0:
                raise TypeError(f"num_attempts must not be negative, got {msg.num_attempts}")
            if not data_bytes and "size" in rec:  # recovered without its body (lazy load)
                msg._size = _field(rec, "size", int)
        except (AddressError, TypeError, KeyError) as exc:
            raise SpoolRecordError(id, str(exc.args[0] if exc.args else exc)) from None
        return msg


def _field(rec: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in rec:
        raise KeyError(f"missing field {key!r}")
    value = rec[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _meta_key(header_name: str) -> str:
    return header_name.lower().replace("-", "_")
