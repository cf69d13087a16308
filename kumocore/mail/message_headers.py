"""The header methods of :class:`kumocore.mail.message.Message`, mixed into it.

Reading (``get_first_named_header_value``, ``get_address_header``...), adding
(``prepend_header``, ``append_header``, ``add_authentication_results``, ``dkim_sign``),
removing, and importing header values into meta (``import_headers``,
``import_x_headers``), with KumoMTA's names and arguments. They work on the message's
parsed header block and its bytes through the few representation methods ``message.py``
keeps (``_block``, ``_own``, ``_prepend``...): an edit that changes nothing keeps
sharing the body, one that does copies it first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import kumocore.mail.headers as _h
from kumocore.errors import ConfigError
from kumocore.mail.address import AddressHeader, parse_address_header
from kumocore.mail.auth_results import render_authentication_results
from kumocore.mail.header_import import collect_imports, parse_specs
from kumocore.policy.policyfn import lua_type_name

if TYPE_CHECKING:
    from kumocore.mail.body import JoinedHeaders


class DkimSigner(Protocol):
    """Anything that signs: ``sign(data)`` returns a ``DKIM-Signature: ...\\r\\n`` header."""

    def sign(self, data: bytes) -> bytes: ...


class MessageHeaders:
    """Mixin of :class:`kumocore.mail.message.Message` (no state of its own)."""

    if TYPE_CHECKING:
        # Message's own slots and representation methods, for the type checker only.
        _data: bytes

        @property
        def data(self) -> bytes: ...
        @data.setter
        def data(self, value: bytes | str) -> None: ...
        def _block(self) -> _h.HeaderBlock | JoinedHeaders: ...
        def _own(self) -> None: ...
        def _ending_of(self) -> bytes: ...
        def _prepend(self, lines: bytes) -> None: ...
        def set_meta(self, key: str, value: Any) -> None: ...

    else:
        __slots__ = ()  # Message has __slots__; an empty base keeps it dict-free

    def get_first_named_header_value(self, name: str) -> str | None:
        try:
            field = self._block().get_first(name)
        except (AttributeError, TypeError):
            _refuse_non_strings("get_first_named_header_value", name=name)
            raise
        return None if field is None else field.value

    def get_all_named_header_values(self, name: str) -> list[str]:
        try:
            return [f.value for f in self._block().get_all(name)]
        except (AttributeError, TypeError):
            _refuse_non_strings("get_all_named_header_values", name=name)
            raise

    def get_all_headers(self) -> list[tuple[str, str]]:
        return [(f.name, f.value) for f in self._block().fields]

    def get_address_header(self, name: str) -> AddressHeader | None:
        try:
            field = self._block().get_first(name)
        except (AttributeError, TypeError):
            _refuse_non_strings("get_address_header", name=name)
            raise
        return None if field is None else parse_address_header(field.raw_value)

    def from_header(self) -> AddressHeader | None:
        return self.get_address_header("From")

    def to_header(self) -> AddressHeader | None:
        return self.get_address_header("To")

    def prepend_header(self, name: str, value: str, encode: bool = False) -> None:
        try:
            line = _h.header_line_for(self._ending_of(), name, value, encode=encode)
        except (AttributeError, TypeError):
            _refuse_non_strings("prepend_header", name=name, value=value)
            raise
        self._prepend(line)

    def add_authentication_results(self, serv_id: str, results: Any) -> None:
        """Prepend an RFC 8601 ``Authentication-Results`` header for ``results`` (what
        :meth:`dkim_verify` returns), formatted as KumoMTA does (:mod:`.auth_results`)."""
        nl = _h.newline_of(self._ending_of()).decode("ascii")
        value = render_authentication_results(serv_id, results, nl)
        self._prepend(f"Authentication-Results: {value}{nl}".encode())

    def append_header(self, name: str, value: str, encode: bool = False) -> None:
        if not (isinstance(name, str) and isinstance(value, str)):  # before the copy
            _refuse_non_strings("append_header", name=name, value=value)
        self._own()
        self.data = _h.append_header(self._data, name, value, encode=encode)

    def remove_all_named_headers(self, name: str) -> None:
        try:
            fields = self._block().get_all(name)
        except (AttributeError, TypeError):
            _refuse_non_strings("remove_all_named_headers", name=name)
            raise
        if not fields:
            return  # nothing to remove: keep sharing the body
        own = self._own_fields(fields)  # first: it makes ``_data`` the whole message
        self.data = _h.remove_fields(self._data, own)

    def _own_fields(self, fields: list[_h.HeaderField]) -> list[_h.HeaderField]:
        """Give this message its own bytes (copy-on-write) and return ``fields``, found
        in :meth:`_block`, with offsets into them.

        Taken from the parse the shared body already has rather than from a new parse of
        the copy: with 1,024 recipients each parsing its copy of a 100 KiB block of tiny
        headers, one transaction held the event loop for about 40 s
        (tests/smtp/test_adversary_header_edits.py)."""
        block = self._block()
        if isinstance(block, _h.HeaderBlock):  # already its own bytes
            return fields
        whole = block.in_whole(fields, len(self._data))
        self._own()
        return whole

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
            own = self._own_fields(removed)  # first: it makes ``_data`` the whole message
            self.data = _h.remove_fields(self._data, own)

    def remove_x_headers(self, names: list[str] | None = None) -> None:
        """Remove the named headers, or every ``X-`` header when ``names`` is None."""
        fields = _x_fields(self._block(), names)
        if not fields:
            return  # nothing to remove: keep sharing the body
        own = self._own_fields(fields)  # first: it makes ``_data`` the whole message
        self.data = _h.remove_fields(self._data, own)

    def dkim_sign(self, signer: DkimSigner) -> None:
        """Prepend the ``DKIM-Signature`` header that ``signer.sign(data)`` returns."""
        if not callable(getattr(signer, "sign", None)):
            raise ConfigError("msg:dkim_sign: SIGNER must be a signer made by "
                              f"kumo.dkim.*_signer, got {lua_type_name(signer)}")
        header = signer.sign(self.data)
        if not isinstance(header, bytes) or not header[:15].lower() == b"dkim-signature:":
            raise ValueError(f"DKIM signer returned {header!r:.60}, not a DKIM-Signature header")
        if not header.endswith(b"\n"):
            header += b"\r\n"
        self._prepend(header)


def _x_fields(
    block: _h.HeaderBlock | JoinedHeaders, names: list[str] | None
) -> list[_h.HeaderField]:
    if names is None:
        return [f for f in block.fields if f.name.lower().startswith("x-")]
    return [f for name in names for f in block.get_all(name)]


def _refuse_non_strings(method: str, **arguments: object) -> None:
    """Refuse, naming it, an argument of ``msg:method`` that is not a string (a policy's
    nil or table), where the header code would fail with a Python ``AttributeError``.
    Header readers ask only once their call failed: a good call pays nothing."""
    for what, value in arguments.items():
        if not isinstance(value, str):
            raise ConfigError(f"msg:{method}: {what.upper()} must be a string, "
                              f"got {lua_type_name(value)}")
