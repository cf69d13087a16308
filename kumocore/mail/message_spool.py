"""The spool records of :class:`kumocore.mail.message.Message`, mixed into it.

For the spool a message is two records under its id: the data (the bytes) and the meta
(:meth:`MessageSpoolRecord.meta_bytes`, compact JSON of envelope, meta and schedule). A
message saved with a shared body (not a sole one) has no data record of its own: its meta
names the body's key and carries its head (``spool_ref``).
:meth:`MessageSpoolRecord.from_spool` rebuilds a message from its records, and raises a
:class:`~kumocore.mail.message_json.SpoolRecordError` naming the message when they are
not what this module writes.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Self

import orjson

from kumocore.mail.address import (
    NULL_SENDER,
    AddressError,
    EnvelopeAddress,
    parse_envelope_address,
    recipient_json,
)
from kumocore.mail.message_json import SpoolRecordError, record_field

_SPOOL_VERSION = 1


class MessageSpoolRecord:
    """Mixin of :class:`kumocore.mail.message.Message` (no state of its own)."""

    if TYPE_CHECKING:
        # Message's constructor and slots, for the type checker only.
        sender: EnvelopeAddress
        recipient: EnvelopeAddress

        @property
        def recipients(self) -> tuple[EnvelopeAddress, ...]: ...

        meta: dict[str, Any]
        created: float
        num_attempts: int
        due: float | None
        spool_ref: tuple[str, bytes] | None
        _size: int

        def __init__(
            self,
            sender: EnvelopeAddress | str,
            recipient: EnvelopeAddress | str | list[str],
            data: bytes,
            *,
            id: str | None = None,
            created: float | None = None,
            num_attempts: int = 0,
            due: float | None = None,
        ) -> None: ...

    else:
        __slots__ = ()  # Message has __slots__; an empty base keeps it dict-free

    def meta_bytes(self) -> bytes:
        """The spool's meta record: compact JSON with a version field. ``recipient`` is
        a string, or a list for a batch (as KumoMTA's meta: one or many)."""
        recipients = self.recipients
        record: dict[str, Any] = {
            "v": _SPOOL_VERSION,
            "sender": self.sender.email,
            "recipient": recipient_json(recipients),
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
    def from_spool(cls, id: str, meta_bytes: bytes, data_bytes: bytes) -> Self:
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
                _spooled_recipients(record_field(rec, "recipient", (str, list))),
                data_bytes,
                id=id,
                created=float(record_field(rec, "created", (int, float))),
                num_attempts=record_field(rec, "num_attempts", int),
                due=None
                if rec.get("due") is None
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
        except (AddressError, TypeError, ValueError, KeyError, UnicodeEncodeError) as exc:
            raise SpoolRecordError(id, str(exc.args[0] if exc.args else exc)) from None
        return msg


# A recovery scan meets the same few senders again and again (one per campaign or bounce
# address): each is parsed once and the messages share one (immutable) address object.
# Bounded (least recently used go); an invalid sender raises AddressError, never cached.
@functools.lru_cache(maxsize=4096)
def _spooled_sender(text: str) -> EnvelopeAddress:
    """The sender of a meta record (``""`` is the null sender); AddressError if invalid."""
    return NULL_SENDER if text == "" else parse_envelope_address(text, allow_null=True)


def _spooled_recipients(value: str | list[Any]) -> str | list[str] | EnvelopeAddress:
    """The recipient of a meta record: one address, or a non-empty list of strings. An
    empty one is the null address of a queued HTTP injection request (KumoMTA's
    ``generator.kumomta.internal`` messages), the only message spooled with it."""
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise TypeError("field 'recipient' must be a string or a list of strings")
    if value == "":
        return _spooled_sender("<>")
    return value
