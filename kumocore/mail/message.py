"""The message object that policies see: envelope, meta, and raw RFC 5322 bytes.

A Message has one recipient unless a listener batches a transaction's recipients
(``batch_handling = 'BatchByDomain'``, ``smtp_server_split_transaction``) or a policy
gives it a list (``msg:set_recipient { ... }``), as in KumoMTA: :attr:`Message.recipient`
is always the first, which names the queue and routes the message; :attr:`recipients`
is all of them. The body is kept as the bytes received and
never MIME-parsed; the header block is parsed lazily on the first header lookup and the
parse is cached until ``data`` changes. The messages of one multi-recipient transaction
share one body (:mod:`kumocore.mail.body`): each holds only its own prepended header lines;
a message received alone holds its body the same way (a *sole* body, spooled as its own).
Method names match KumoMTA's Lua message API (``msg:get_first_named_header_value(...)``)
so Lua and Python policies read the same.

This module holds the representation: envelope, bytes, shared body, the parsed header
block and meta. The header methods are in :mod:`kumocore.mail.message_headers`; the
spool records (:meth:`Message.meta_bytes`, :meth:`Message.from_spool`) are in
:mod:`kumocore.mail.message_spool`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import kumocore.mail.headers as _h
from kumocore.errors import ConfigError
from kumocore.mail.address import (
    AddressHeader,
    EnvelopeAddress,
    HeaderAddress,
    parse_envelope_address,
)
from kumocore.mail.body import JoinedHeaders, SharedBody, crlf_paired
from kumocore.mail.ids import new_message_id
from kumocore.mail.message_headers import DkimSigner, MessageHeaders
from kumocore.mail.message_json import SpoolRecordError, jsonable
from kumocore.mail.message_methods import MessageMethods
from kumocore.mail.message_spool import MessageSpoolRecord
from kumocore.mail.queue_name import message_queue_name
from kumocore.policy.policyfn import lua_type_name

__all__ = [
    "AddressHeader",
    "DkimSigner",
    "EnvelopeAddress",
    "HeaderAddress",
    "Message",
    "SpoolRecordError",
]

def _address(value: EnvelopeAddress | str, *, allow_null: bool) -> EnvelopeAddress:
    if isinstance(value, EnvelopeAddress):
        return value
    return parse_envelope_address(value, allow_null=allow_null)


RecipientArg = EnvelopeAddress | str | Sequence[EnvelopeAddress | str]


def recipient_tuple(value: RecipientArg) -> tuple[EnvelopeAddress, ...]:
    """One address, or a non-empty list of them, as a tuple of parsed addresses."""
    if isinstance(value, (EnvelopeAddress, str)):
        return (_address(value, allow_null=False),)
    if (isinstance(value, Mapping) and value) or not isinstance(value, Sequence | Mapping):
        raise TypeError(f"a recipient is an address or a list of addresses, got {value!r}")
    if not value:  # an empty Lua table arrives as an empty mapping
        raise ValueError("the recipient list is empty: a message needs one recipient")
    for item in value:
        if not isinstance(item, EnvelopeAddress | str):
            raise TypeError(f"the recipient list holds {item!r:.80}, not an address")
    return tuple(_address(item, allow_null=False) for item in value)


class Message(MessageHeaders, MessageSpoolRecord, MessageMethods):
    """A message: envelope, meta and bytes. Attributes are plain; ``data`` is a property.

    The header methods (reading, adding, removing, importing into meta, DKIM signing) come
    from :class:`kumocore.mail.message_headers.MessageHeaders`, the spool records from
    :class:`kumocore.mail.message_spool.MessageSpoolRecord`; more of KumoMTA's methods
    (scheduling, conformance, DKIM verification, report and MIME parsing) from
    :class:`kumocore.mail.message_methods.MessageMethods`."""

    __slots__ = ("_crlf_clean", "_data", "_headers", "_more", "_shared", "_size",
                 "created", "due", "id", "meta", "num_attempts", "recipient", "sender",
                 "spool_ref", "unspooled")  # fmt: skip

    def __init__(
        self,
        sender: EnvelopeAddress | str,
        recipient: RecipientArg,
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
        if isinstance(recipient, (EnvelopeAddress, str)):
            self.recipient: EnvelopeAddress = _address(recipient, allow_null=False)
            #: The recipients after the first (a batch); empty for nearly every message.
            self._more: tuple[EnvelopeAddress, ...] = ()
        else:
            self.recipient, *more = recipient_tuple(recipient)
            self._more = tuple(more)
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
        #: True while the message was accepted without being written (``deferred_spool``):
        #: its bytes exist only here until the store writes them (kumocore.spool.store).
        self.unspooled = False
        # jsonable makes the copy: the caller's mapping is never shared.
        self.meta: dict[str, Any] = jsonable(meta, "meta") if meta else {}
        self.created: float = time.time() if created is None else created
        self.num_attempts: int = num_attempts
        self.due: float | None = due

    def __repr__(self) -> str:
        to = ",".join(map(str, self.recipients))
        return f"<Message {self.id} {self.sender}->{to} {self._size} bytes>"

    @property
    def sender_domain(self) -> str:
        return self.sender.domain

    @property
    def recipient_domain(self) -> str:
        return self.recipient.domain

    def set_sender(self, sender: EnvelopeAddress | str) -> None:
        self.sender = _address(sender, allow_null=True)

    @property
    def recipients(self) -> tuple[EnvelopeAddress, ...]:
        """Every envelope recipient, the first (:attr:`recipient`) first."""
        return (self.recipient, *self._more) if self._more else (self.recipient,)

    #: Lua method names answered by another method (see the Lua bridge's proxies).
    __kumo_lua_names__ = {"recipient": "lua_recipient"}

    def lua_recipient(self) -> EnvelopeAddress | list[EnvelopeAddress]:
        """``msg:recipient()``: the address, or the list of them for a batch (KumoMTA)."""
        return list(self.recipients) if self._more else self.recipient

    def set_recipient(self, recipient: RecipientArg) -> None:
        """``msg:set_recipient(addr)``, or a list of addresses (KumoMTA's batches)."""
        if isinstance(recipient, (EnvelopeAddress, str)):
            self.recipient = _address(recipient, allow_null=False)
            self._more = ()
        else:
            self.set_recipient_list(recipient)

    def set_recipient_list(self, recipients: Sequence[EnvelopeAddress | str]) -> None:
        """Replace the recipients with ``recipients`` (at least one; the first names the
        queue). ValueError for an empty list, AddressError for an invalid address."""
        first, *more = recipient_tuple(recipients)
        self.recipient = first
        self._more = tuple(more)

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

        ``size`` keeps reporting the released body's length, for logs. A message not
        written yet (:attr:`unspooled`) keeps its body: there is no other copy.
        """
        if self.unspooled:
            return
        self._data = b""
        self._crlf_clean = False  # reloaded from the spool later: not checked
        self._shared = None
        self._headers = None

    def forget_own_parse(self) -> None:
        """Drop the parsed header block of a message that holds its own bytes (parsed
        again if read again). The listener calls it after each recipient's policy event:
        1,000 own copies of a 100 KiB block of tiny headers, each parse kept until the
        transaction was spooled, held 2.4 GB at once. A shared body's parse is shared."""
        if self._shared is None:
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

    def _ending_of(self) -> bytes:
        """The bytes whose line ends new lines copy: the head's, else the body's."""
        shared = self._shared
        return self._data if self._data or shared is None else shared.data

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

    def set_meta(self, key: str, value: Any) -> None:
        """Set a meta value; it must survive a JSON round trip (ConfigError otherwise,
        naming the part that does not, in a policy's terms)."""
        if not isinstance(key, str):
            raise ConfigError(f"msg:set_meta: KEY must be a string, got {lua_type_name(key)}")
        if type(value) is str:
            self.meta[key] = value
            return
        try:
            self.meta[key] = jsonable(value, f"meta {key!r}")
        except TypeError as exc:
            raise ConfigError(f"msg:set_meta: {exc}") from None

    def get_meta(self, key: str, default: Any = None) -> Any:
        try:
            return self.meta.get(key, default)
        except TypeError:  # a table as the key: unhashable
            raise ConfigError(
                f"msg:get_meta: KEY must be a string, got {lua_type_name(key)}") from None
