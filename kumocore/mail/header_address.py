"""Addresses from From:/To:/Cc: style headers, as KumoMTA's AddressHeader shows them.

An address header is a list of mailboxes and groups (``Friends: a@x, b@y;``). ``list``
flattens it; the single-address accessors (``user``, ``domain``, ``email``, ``name``)
answer only for a header of exactly one simple mailbox and raise KumoMTA's errors
otherwise; ``str()`` (``tostring`` in Lua) is KumoMTA's JSON rendition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy as email_policy
from email.utils import getaddresses
from typing import Any

import orjson

from kumocore.mail.headers import decode_rfc2047

__all__ = [
    "AddressGroup",
    "AddressHeader",
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


def _grouped(raw_value: str,
             found: list[HeaderAddress]) -> tuple[HeaderAddress | AddressGroup, ...]:
    """The header's entries with its groups, or ``()`` when it has none (or the group
    structure cannot be matched with ``found`` one to one)."""
    try:
        groups = email_policy.default.header_factory("To", raw_value).groups
    except Exception:  # a lenient parser still failing: treat as plain mailboxes
        return ()
    if not any(g.display_name is not None for g in groups):
        return ()
    entries: list[HeaderAddress | AddressGroup] = []
    pending = iter(found)
    for group in groups:
        members = [a for a in group.addresses if a.addr_spec and a.addr_spec != "<>"]
        taken = tuple(next(pending, None) for _ in members)
        if any(t is None or t.email != m.addr_spec for t, m in zip(taken, members,
                                                                   strict=True)):
            return ()
        addresses = tuple(t for t in taken if t is not None)
        if group.display_name is None:
            entries.extend(addresses)
        else:
            entries.append(AddressGroup(group.display_name or None, addresses))
    return tuple(entries) if next(pending, None) is None else ()


def parse_address_header(raw_value: str) -> AddressHeader | None:
    """Parse the *raw* (still RFC 2047 encoded) value of an address header.

    Encoded words are decoded per display name after splitting, never before: a decoded
    name may contain a comma or ``<`` that would otherwise break the address list apart.
    Entries without an address (garbage) are skipped. Groups (``Name: a@x, b@y;``) are
    kept in ``entries``; ``list`` flattens them. A header of only empty groups
    (``undisclosed-recipients:;``) is a header with an empty ``list``, as in KumoMTA;
    None only when nothing at all could be read.
    """
    found: list[HeaderAddress] = []
    for name, addr in getaddresses([raw_value]):
        if not addr:
            continue
        found.append(HeaderAddress(decode_rfc2047(name) if name else None, addr))
    entries = _grouped(raw_value, found) if ":" in raw_value else ()
    if not found and not entries:
        return None
    return AddressHeader(tuple(found), entries)
