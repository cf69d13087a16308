"""Addresses from From:/To:/Cc: style headers, as KumoMTA's AddressHeader shows them.

An address header is a list of mailboxes and groups (``Friends: a@x, b@y;``). ``list``
flattens it; the single-address accessors (``user``, ``domain``, ``email``, ``name``)
answer only for a header of exactly one simple mailbox and raise KumoMTA's errors
otherwise; ``str()`` (``tostring`` in Lua) is KumoMTA's JSON rendition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

import orjson

from kumocore.mail.address_split import AddressHeaderError, group_name, split_groups
from kumocore.mail.rfc2047 import decode_rfc2047

__all__ = [
    "AddressGroup",
    "AddressHeader",
    "AddressHeaderError",
    "HeaderAddress",
    "NotSingleAddressError",
    "parse_address_header",
]

_QUOTED_PAIR = re.compile(r"\\(.)")  # a backslash-escaped character in a quoted string


class NotSingleAddressError(ValueError):
    """A single-address accessor (``.user``, ``.domain``, ``.email``, ``.name``) used on an
    address header that is not one simple address; the text is KumoMTA's."""


@dataclass(frozen=True, slots=True)
class HeaderAddress:
    """One mailbox from a From:/To:/Cc: style header: ``name`` is the decoded display name.

    ``str()`` (and ``tostring`` in Lua) is KumoMTA's JSON rendition,
    ``{"name":"John Smith","address":"john.smith@example.com"}`` (``null`` name when
    there is none)."""

    name: str | None
    email: str

    @property
    def user(self) -> str:
        """The local part, decoded: ``"info@"@example.com`` gives ``info@`` (``email``
        keeps the quotes), as KumoMTA does since 2026.04.09."""
        local = self.email.rpartition("@")[0] if "@" in self.email else self.email
        if len(local) >= 2 and local[0] == local[-1] == '"':
            return _QUOTED_PAIR.sub(r"\1", local[1:-1])
        return local

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower() if "@" in self.email else ""

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "address": self.email}

    def __str__(self) -> str:
        return orjson.dumps(self.to_json()).decode()


@dataclass(frozen=True, slots=True)
class AddressGroup:
    """A named group of mailboxes (``Friends: a@x, b@y;``) in an address header."""

    name: str | None
    addresses: tuple[HeaderAddress, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "addresses": [a.to_json() for a in self.addresses]}


@dataclass(frozen=True, slots=True)
class AddressHeader:
    """The addresses of one address header (KumoMTA's AddressList).

    ``list`` holds every mailbox in header order, groups flattened. ``entries`` keeps the
    header's structure (mailboxes and :class:`AddressGroup`); empty means "all simple
    mailboxes, as in ``list``". ``user``, ``domain``, ``email`` and ``name`` describe the
    one address of a header holding exactly one simple mailbox, and raise
    :class:`NotSingleAddressError` otherwise ("is not a simple single address" for several
    entries, "is not a simple address" for one group), as KumoMTA does. ``str()`` is
    KumoMTA's JSON rendition: ``[{"Address":{"name":..,"address":..}}, {"Group":{...}}]``.
    """

    list: tuple[HeaderAddress, ...]
    entries: tuple[HeaderAddress | AddressGroup, ...] = ()

    @property
    def _entries(self) -> tuple[HeaderAddress | AddressGroup, ...]:
        return self.entries or self.list

    @property
    def first(self) -> HeaderAddress:
        return self.list[0]

    @property
    def single(self) -> HeaderAddress:
        """The one simple address; NotSingleAddressError when there is not exactly one."""
        entries = self._entries
        if not entries:
            raise NotSingleAddressError("no addresses")
        if len(entries) > 1:
            raise NotSingleAddressError("is not a simple single address")
        if not isinstance(entries[0], HeaderAddress):
            raise NotSingleAddressError("is not a simple address")
        return entries[0]

    @property
    def user(self) -> str:
        return self.single.user

    @property
    def domain(self) -> str:
        return self.single.domain

    @property
    def email(self) -> str:
        return self.single.email

    @property
    def name(self) -> str | None:
        return self.single.name

    def __len__(self) -> int:
        return len(self.list)

    def __bool__(self) -> bool:
        # A present header is never "nothing", even with no mailboxes (an empty group).
        return True

    def __str__(self) -> str:
        return orjson.dumps([
            {"Address": e.to_json()} if isinstance(e, HeaderAddress) else {"Group": e.to_json()}
            for e in self._entries
        ]).decode()


def _mailboxes(text: str) -> list[HeaderAddress]:
    """The mailboxes of a run of text holding no group (see :func:`split_groups`)."""
    # Splitting around groups leaves the commas between a group and its neighbours on the
    # pieces (``a@x.org,``). getaddresses' strict mode (CPython 3.13, and the security
    # fix backported to 3.11/3.12 builds such as Debian's) reads a list ending in a comma
    # as one broken entry and returns nothing of it; older builds skip the empty entry.
    text = text.strip(" \t\r\n,")
    try:
        pairs = getaddresses([text])
    except RecursionError:
        # The standard library also recurses once per ':' it reads as a group inside a
        # group (``G: a: b: ...``, ``<@a:<@a:...``); split_groups bounds comments only.
        raise AddressHeaderError(
            "address header nests groups or route addresses too deeply to read") from None
    return [HeaderAddress(decode_rfc2047(name) if name else None, addr)
            for name, addr in pairs if addr]


def parse_address_header(raw_value: str) -> AddressHeader | None:
    """Parse the *raw* (still RFC 2047 encoded) value of an address header.

    Encoded words are decoded per display name after splitting, never before: a decoded
    name may contain a comma or ``<`` that would otherwise break the address list apart.
    Entries without an address (garbage) are skipped. Groups (``Name: a@x, b@y;``) are
    kept in ``entries``; ``list`` flattens them. A header of only empty groups
    (``undisclosed-recipients:;``) is a header with an empty ``list``, as in KumoMTA;
    None only when nothing at all could be read. Linear in the header's length; raises
    :class:`AddressHeaderError` (a ``ValueError``) for comments nested deeper than
    :data:`~kumocore.mail.address_split.MAX_COMMENT_DEPTH`.
    """
    found: list[HeaderAddress] = []
    entries: list[HeaderAddress | AddressGroup] = []
    grouped = False
    for piece in split_groups(raw_value):
        mailboxes = _mailboxes(piece.text)
        found.extend(mailboxes)
        if piece.group is None:
            entries.extend(mailboxes)
        else:
            grouped = True
            entries.append(AddressGroup(group_name(piece.group), tuple(mailboxes)))
    if not found and not grouped:
        return None
    return AddressHeader(tuple(found), tuple(entries) if grouped else ())
