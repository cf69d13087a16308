"""The message object that policies see: envelope, meta, and raw RFC 5322 bytes.

One Message has one recipient, as in KumoMTA. The body is kept as the bytes received and
never MIME-parsed; the header block is parsed lazily on the first header lookup and the
parse is cached until ``data`` changes. The messages of one multi-recipient transaction
share one body (:mod:`kumocore.mail.body`): each holds only its own prepended header lines;
a message received alone holds its body the same way (a *sole* body, spooled as its own).
Method names match KumoMTA's Lua message API (``msg:get_first_named_header_value(...)``)
so Lua and Python policies read the same.

For the spool a message is two records under its id: the data (the bytes) and the meta
(:meth:`Message.meta_bytes`, compact JSON of envelope, meta and schedule). A message
saved with a shared body (not a sole one) has no data record of its own: its meta names
the body's key and carries its head (``spool_ref``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

import kumocore.mail.headers as _h
from kumocore.mail.address import (
    NULL_SENDER,
    AddressError,
    AddressHeader,
    EnvelopeAddress,
    HeaderAddress,
    parse_address_header,
    parse_envelope_address,
)
from kumocore.mail.auth_results import render_authentication_results
from kumocore.mail.body import JoinedHeaders, SharedBody, crlf_paired
from kumocore.mail.header_import import collect_imports, parse_specs
from kumocore.mail.ids import new_message_id
from kumocore.mail.message_json import SpoolRecordError, jsonable, record_field
from kumocore.mail.message_methods import MessageMethods
from kumocore.mail.queue_name import message_queue_name

__all__ = [
    "AddressHeader",
    "DkimSigner",
    "EnvelopeAddress",
    "HeaderAddress",
    "Message",
    "SpoolRecordError",
]

_SPOOL_VERSION = 1


class DkimSigner(Protocol):
    """Anything that signs: ``sign(data)`` returns a ``DKIM-Signature: ...\\r\\n`` header."""

    def sign(self, data: bytes) -> bytes: ...


def _address(value: EnvelopeAddress | str, *, allow_null: bool) -> EnvelopeAddress:
    if isinstance(value, EnvelopeAddress):
        return value
    return parse_envelope_address(value, allow_null=allow_null)


class Message(MessageMethods):
    """A message for one recipient. Attributes are plain; ``data`` is a property.

    More of KumoMTA's methods (scheduling, conformance, DKIM verification, report and MIME
    parsing) come from :class:`kumocore.mail.message_methods.MessageMethods`."""

    __slots__ = ("_crlf_clean", "_data", "_headers", "_shared", "_size", "created", "due",
                 "id", "meta", "num_attempts", "recipient", "sender", "spool_ref")  # fmt: skip

    def __init__(
        self,
        sender: EnvelopeAddress | str,
        recipient: EnvelopeAddress | str,
        data: bytes,
        *,
        shared: SharedBody | None = None,
        id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        created: float | None = None,
        num_attempts: int = 0,
        due: float | None = None,
        crlf_clean: bool = False,
    ) -> None:
        self.id: str = id or new_message_id()
        self.sender: EnvelopeAddress = _address(sender, allow_null=True)
        self.recipient: EnvelopeAddress = _address(recipient, allow_null=False)
        # With a shared body, ``_data`` is only this message's head (its own header lines).
        self._data = bytes(data)
        # Whether ``_data`` (the whole message, or the head) is known to be CRLF-clean:
        # only its producer can say so (``crlf_clean``); every edit clears or rechecks it.
        self._crlf_clean = crlf_clean
        self._shared = shared
        self._size = len(self._data) + (len(shared) if shared is not None else 0)
        self._headers: _h.HeaderBlock | JoinedHeaders | None = None
        #: ``(body key, head)`` when the spool holds this message as a shared body plus
        #: its head (set by the store when saved); fixed once saved, whatever edits follow.
        self.spool_ref: tuple[str, bytes] | None = None
        # jsonable makes the copy: the caller's mapping is never shared.
        self.meta: dict[str, Any] = jsonable(meta, "meta") if meta else {}
        self.created: float = time.time() if created is None else created
        self.num_attempts: int = num_attempts
        self.due: float | None = due

    def __repr__(self) -> str:
        return f"<Message {self.id} {self.sender}->{self.recipient} {self._size} bytes>"

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
        """The whole message; with a shared body, joined on each call (a transient copy)."""
        shared = self._shared
        if shared is None:
            return self._data
        return self._data + shared.data if self._data else shared.data

    @data.setter
    def data(self, value: bytes | str) -> None:
        self._data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self._crlf_clean = False  # new bytes from anywhere: nothing known about them
        self._shared = None
        self._size = len(self._data)
        self._headers = None

    def get_data(self) -> bytes:
        return self.data

    def set_data(self, data: bytes | str) -> None:
        self.data = data

    # KumoMTA's msg:set_data takes any Lua string: binary content arrives as bytes.
    set_data.__kumo_bytes__ = True  # type: ignore[attr-defined]

    @property
    def crlf_clean(self) -> bool:
        """True only when every CR and LF of :attr:`data` is known to be part of a CRLF
        pair, so delivery may skip re-normalising the line endings (see
        :func:`kumocore.delivery.wire.dot_stuff`). False means "not known", never "dirty"."""
        if not self._crlf_clean:
            return False
        shared = self._shared
        return shared is None or shared.crlf_clean

    @property
    def shared(self) -> SharedBody | None:
        """The body shared with other messages (None once this one has its own copy)."""
        return self._shared

    @property
    def head(self) -> bytes:
        """The header lines in front of the shared body (``b""`` without one)."""
        return self._data if self._shared is not None else b""

    def _own(self) -> None:
        """Copy-on-write: give this message its own bytes before an edit of the body."""
        if self._shared is not None:
            clean = self.crlf_clean
            self.data = self.data
            self._crlf_clean = clean  # the same bytes, now in one piece

    def release_data(self) -> None:
        """Drop the body from memory (it stays in the data spool); ``data`` is then ``b""``.

        ``size`` keeps reporting the released body's length, for logs.
        """
        self._data = b""
        self._crlf_clean = False  # reloaded from the spool later: not checked
        self._shared = None
        self._headers = None

    @property
    def size(self) -> int:
        return self._size

    def queue_name(self) -> str:
        return message_queue_name(self)

    def _block(self) -> _h.HeaderBlock | JoinedHeaders:
        if self._headers is None:
            shared = self._shared
            if shared is None:
                self._headers = _h.HeaderBlock(self._data)
            else:  # the body's block is parsed once for all the messages sharing it
                self._headers = JoinedHeaders(_h.HeaderBlock(self._data), shared.headers())
        return self._headers

    def _own_block(self) -> _h.HeaderBlock:
        """The header block with offsets into :attr:`data`, for edits (copy-on-write)."""
        self._own()
        block = self._block()
        assert isinstance(block, _h.HeaderBlock)
        return block

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

    def _ending_of(self) -> bytes:
        """The bytes whose line ends new lines copy: the head's, else the body's."""
        shared = self._shared
        return self._data if self._data or shared is None else shared.data

    def prepend_header(self, name: str, value: str, encode: bool = False) -> None:
        self._prepend(_h.header_line_for(self._ending_of(), name, value, encode=encode))

    def add_authentication_results(self, serv_id: str, results: Any) -> None:
        """Prepend an RFC 8601 ``Authentication-Results`` header for ``results`` (what
        :meth:`dkim_verify` returns), formatted as KumoMTA does (:mod:`.auth_results`)."""
        nl = _h.newline_of(self._ending_of()).decode("ascii")
        value = render_authentication_results(serv_id, results, nl)
        self._prepend(f"Authentication-Results: {value}{nl}".encode())

    def _prepend(self, lines: bytes) -> None:
        """``lines`` in front of the message: only its head grows when it has a (shared
        or sole) body apart, else its own bytes. It stays known CRLF-clean if the added
        lines are: they are checked, not the message again (a compare of the old bytes
        with the new tail cost a pass over a 100 KB body)."""
        # Lines whose CRs and LFs are all paired end with no bare CR: put in front, they
        # leave the whole as clean as it was.
        clean = self._crlf_clean and crlf_paired(lines)
        if self._shared is None:
            self.data = lines + self._data
        else:
            self._data = lines + self._data
            self._size += len(lines)
            self._headers = None
        self._crlf_clean = clean

    def append_header(self, name: str, value: str, encode: bool = False) -> None:
        self._own()
        self.data = _h.append_header(self._data, name, value, encode=encode)

    def remove_all_named_headers(self, name: str) -> None:
        if self._block().get_first(name) is None:
            return  # nothing to remove: keep sharing the body
        block = self._own_block()
        data = _h.remove_headers(self._data, name, block)
        if data is not self._data:
            self.data = data

    def import_x_headers(self, names: list[str] | None = None) -> None:
        """Copy headers into meta: ``X-Campaign-Id`` becomes ``x_campaign_id``.

        With ``names``, those headers (any name, if present); otherwise (None or an empty
        list, as KumoMTA) every header whose name starts with ``X-``. Imported values
        replace existing meta values; when a header occurs twice, the LAST occurrence
        wins. KumoMTA implements this as ``import_headers`` with one default spec per
        name (``match = 'last'``), so this does the same.
        """
        patterns = list(names) if names else ["X-*"]
        self.import_headers([{"name": name} for name in patterns])

    def import_headers(self, specs: Any) -> None:
        """``msg:import_headers{ {name=, match=, transform=, target=, remove=}, ... }``:
        header values into meta, matched headers optionally removed
        (:mod:`kumocore.mail.header_import`)."""
        compiled = parse_specs(specs)
        updates, removed = collect_imports(compiled, self._block().fields)
        for key, value in updates.items():
            self.set_meta(key, value)
        if removed:
            block = self._own_block()  # offsets into this message's own bytes
            _, removed = collect_imports(compiled, block.fields)
            self.data = _h.remove_fields(self._data, removed)

    def remove_x_headers(self, names: list[str] | None = None) -> None:
        """Remove the named headers, or every ``X-`` header when ``names`` is None."""
        if not _x_fields(self._block(), names):
            return  # nothing to remove: keep sharing the body
        fields = _x_fields(self._own_block(), names)
        self.data = _h.remove_fields(self._data, fields)

    def dkim_sign(self, signer: DkimSigner) -> None:
        """Prepend the ``DKIM-Signature`` header that ``signer.sign(data)`` returns."""
        header = signer.sign(self.data)
        if not isinstance(header, bytes) or not header[:15].lower() == b"dkim-signature:":
            raise ValueError(f"DKIM signer returned {header!r:.60}, not a DKIM-Signature header")
        if not header.endswith(b"\n"):
            header += b"\r\n"
        self._prepend(header)

    def set_meta(self, key: str, value: Any) -> None:
        """Set a meta value; it must survive a JSON round trip (TypeError otherwise)."""
        if not isinstance(key, str):
            raise TypeError(f"meta key must be a string, got {key!r}")
        self.meta[key] = value if type(value) is str else jsonable(value, f"meta {key!r}")

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)

    def meta_bytes(self) -> bytes:
        """The spool's meta record: compact JSON with a version field."""
        record: dict[str, Any] = {
            "v": _SPOOL_VERSION,
            "sender": self.sender.email,
            "recipient": self.recipient.email,
            "meta": self.meta,
            "created": self.created,
            "num_attempts": self.num_attempts,
            "due": self.due,
            "size": self._size,
        }
        if self.spool_ref is not None:
            # Latin-1 maps every byte to one code point: the head round-trips exactly.
            record["body"] = self.spool_ref[0]
            record["head"] = self.spool_ref[1].decode("latin-1")
        return orjson.dumps(record)

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
            msg = cls(
                _spooled_sender(record_field(rec, "sender", str)),
                record_field(rec, "recipient", str),
                data_bytes,
                id=id,
                created=float(record_field(rec, "created", (int, float))),
                num_attempts=record_field(rec, "num_attempts", int),
                due=None if rec.get("due") is None
                else float(record_field(rec, "due", (int, float))),
            )
            # Parsed JSON is JSON-able by construction: skip set_meta's validating copy.
            msg.meta = record_field(rec, "meta", dict)
            if msg.num_attempts < 0:
                raise TypeError(f"num_attempts must not be negative, got {msg.num_attempts}")
            if "body" in rec:
                head = record_field(rec, "head", str).encode("latin-1")
                msg.spool_ref = (record_field(rec, "body", str), head)
            if not data_bytes and "size" in rec:  # recovered without its body (lazy load)
                msg._size = record_field(rec, "size", int)
        except (AddressError, TypeError, KeyError, UnicodeEncodeError) as exc:
            raise SpoolRecordError(id, str(exc.args[0] if exc.args else exc)) from None
        return msg


# A recovery scan meets the same few senders again and again (one per campaign or bounce
# address): each is parsed once and the messages share one (immutable) address object.
# Bounded (least recently used go); an invalid sender raises AddressError, never cached.
@functools.lru_cache(maxsize=4096)
def _spooled_sender(text: str) -> EnvelopeAddress:
    """The sender of a meta record (``""`` is the null sender); AddressError if invalid."""
    return NULL_SENDER if text == "" else parse_envelope_address(text, allow_null=True)


def _x_fields(block: _h.HeaderBlock | JoinedHeaders,
              names: list[str] | None) -> list[_h.HeaderField]:
    if names is None:
        return [f for f in block.fields if f.name.lower().startswith("x-")]
    return [f for name in names for f in block.get_all(name)]
