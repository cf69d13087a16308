"""Header values of ``kumo.mimepart`` in KumoMTA's shapes: reading them from header text
and writing them back as header text.

Shapes (what ``headers:to()``, ``hdr.value`` give and ``headers:set_to(...)`` takes):
a mailbox is ``{name=?, address={local_part=, domain=}}``, a group
``{name=, entries={mailbox...}}``, an address list an array of both, MIME parameters
``{value=, parameters={name=value}}``, a message id the id without its angle brackets.

Writing follows KumoMTA: list entries are joined by ``,`` CRLF TAB; a display name is
quoted when it is not all atext and RFC 2047 encoded when not ASCII; MIME parameters are
written one per folded line, sorted by name, as quoted strings when ASCII and RFC 2231
``UTF-8''`` percent-encoded (in sections of at most ~74 columns) otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kumocore.mail.header_address import (
    AddressGroup,
    AddressHeaderError,
    HeaderAddress,
    parse_address_header,
)
from kumocore.mail.mime_codec import header_qp_encode
from kumocore.mail.rfc2047 import decode_rfc2047
from kumocore.policy.policyfn import lua_type_name

__all__ = [
    "HeaderValueError",
    "MimeParams",
    "encode_address_list",
    "encode_mailbox",
    "encode_message_ids",
    "encode_mime_params",
    "parse_address_list",
    "parse_message_id",
    "parse_message_ids",
    "parse_mime_params",
    "unstructured",
]

MimeParams = dict[str, Any]  # {"value": str, "parameters": {name: value}}

_ATEXT = frozenset(
    "!#$%&'*+-/=?^_`{|}~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')
#: A bracketed word; it is a message id when it has an ``@`` inside (:func:`_is_id`). Not
#: one pattern ``<(x+@x+)>``: that backtracks over every ``@`` of a long word with no ``>``
#: (``<a@a@a@...``: 20 KB took a second, a 256 KB header minutes).
_MSG_ID = re.compile(r"<([^<>\s]++)>")
_PARAM = re.compile(r'\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.DOTALL)
#: What a failed ``_PARAM`` match at a position may skip: no match can start inside it.
_NOT_PARAM = re.compile(r"\s*[^\s=;]*")
#: ``name``, ``name*0``, ``name*0*`` or ``name*`` (RFC 2231: an unsectioned encoded value).
_SECTION = re.compile(r"^(.*?)(?:\*(\d+))?(\*)?$")


class HeaderValueError(ValueError):
    """A header value that cannot be read (or assigned) as the structure asked for."""


def unstructured(raw: str) -> str:
    """The text of an unstructured header: folds and whitespace runs become one space,
    encoded words are decoded."""
    return decode_rfc2047(re.sub(r"[ \t\r\n]+", " ", raw))


# ------------------------------------------------------------------ MIME parameters
def _token(c: str) -> bool:
    return "!" <= c <= "~" and c not in _TSPECIALS


def _quoted_ok(c: str) -> bool:
    # qtext or quoted-pair, ASCII only: anything ASCII but HTAB.
    return c.isascii() and c != "\t"


def parse_mime_params(raw: str) -> MimeParams:
    """``text/plain; charset="utf-8"`` → ``{value='text/plain', parameters={...}}``;
    RFC 2231 sections and charsets and RFC 2047 words in values are decoded."""
    text = re.sub(r"\r?\n[ \t]", " ", raw)
    value, _, rest = text.partition(";")
    value = value.strip()
    if not value or any(not (_token(c) or c == "/") for c in value):
        raise HeaderValueError(f"invalid header: {value!r} is not a MIME type or token")
    pieces: dict[str, list[tuple[int, bool, str]]] = {}
    for found in _params(rest):
        name, val = found.group(1), found.group(2).strip()
        # A name of 8-bit bytes as U+FFFD (values are decoded so below): Lua cannot take
        # the surrogates that stand for them.
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if val.startswith('"'):
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        section = _SECTION.match(name)
        if section is not None and (section.group(2) or section.group(3)):
            base, number, encoded = (
                section.group(1),
                int(section.group(2) or 0),
                bool(section.group(3)),
            )
        else:
            base, number, encoded = name, 0, False
        pieces.setdefault(base, []).append((number, encoded, val))
    params = {name: _join_sections(sorted(parts)) for name, parts in pieces.items()}
    return {"value": value, "parameters": params}


def _params(rest: str) -> Iterator[re.Match[str]]:
    """``_PARAM.finditer(rest)`` in linear time: where a match fails, ``finditer`` would
    retry at every later character of the same name (a 20 KB name without ``=`` took
    seconds, 256 KB minutes), yet each of those starts fails the same way."""
    pos = 0
    while pos < len(rest):
        found = _PARAM.match(rest, pos)
        if found is not None:
            yield found
            pos = max(found.end(), pos + 1)
            continue
        skip = _NOT_PARAM.match(rest, pos)
        pos = max(skip.end() if skip is not None else pos, pos + 1)


def _join_sections(parts: list[tuple[int, bool, str]]) -> str:
    charset = "utf-8"
    out = bytearray()
    for index, (_, encoded, val) in enumerate(parts):
        if not encoded:
            out += val.encode("utf-8", "surrogateescape")
            continue
        if index == 0 and val.count("'") >= 2:
            charset, _, val = val.split("'", 2)
            charset = charset or "utf-8"
        out += re.sub(
            rb"%([0-9A-Fa-f]{2})",
            lambda m: bytes([int(m.group(1), 16)]),
            val.encode("utf-8", "surrogateescape"),
        )
    try:
        joined = bytes(out).decode(charset, "replace")
    except LookupError:
        joined = bytes(out).decode("utf-8", "replace")
    return decode_rfc2047(joined)


def encode_mime_params(value: str, params: Mapping[str, str], rfc2047: Sequence[str] = ()) -> str:
    """MIME parameters as header text; names in ``rfc2047`` get a quoted encoded word
    (what KumoMTA does for a non-ASCII attachment ``name``)."""
    out = [value]
    for name in sorted(params):
        val = params[name]
        if name in rfc2047:
            out.append(f'{name}="{header_qp_encode(val)}"')
        else:
            out.extend(_param_sections(name, val))
    return ";\r\n\t".join(out)


def _param_sections(name: str, value: str) -> list[str]:
    quoted = all(_quoted_ok(c) for c in value)
    encode = not quoted
    chunks: list[str] = []
    chars = iter(value)
    pending = next(chars, None)
    while pending is not None:
        prefix = '"' if quoted else ("UTF-8''" if encode and not chunks else "")
        limit = 74 - (len(name) + 4 + len(prefix))
        piece = ""
        while pending is not None and len(piece) < limit:
            c = pending
            if quoted:
                piece += "\\" + c if c in '"\\' else c
            elif _token(c) and c != "%":
                piece += c
            else:
                piece += "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
            pending = next(chars, None)
        chunks.append(f'"{piece}"' if quoted else prefix + piece)
    star = "" if quoted else "*"
    if len(chunks) == 1:
        return [f"{name}{star}={chunks[0]}"]
    return [f"{name}*{i}{star}={chunk}" for i, chunk in enumerate(chunks)]


# ------------------------------------------------------------------ addresses
def _mailbox(entry: HeaderAddress) -> dict[str, Any]:
    local, _, domain = entry.email.rpartition("@")
    if len(local) >= 2 and local[0] == local[-1] == '"':
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    mailbox: dict[str, Any] = {"address": {"local_part": local, "domain": domain}}
    if entry.name:
        mailbox["name"] = entry.name
    return mailbox


def parse_address_list(raw: str, *, groups: bool = True) -> list[dict[str, Any]]:
    """An address list (``groups``) or a mailbox list, in KumoMTA's shape."""
    try:
        parsed = parse_address_header(re.sub(r"\r?\n([ \t])", r"\1", raw))
    except AddressHeaderError as exc:  # "((((...": nested beyond any sane depth
        raise HeaderValueError(f"invalid header: {raw[:80]!r}...: {exc}") from None
    if parsed is None or any("@" not in a.email for a in parsed.list):
        raise HeaderValueError(f"invalid header: {raw!r} is not an address list")
    entries = parsed.entries or parsed.list
    out: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, AddressGroup):
            if not groups:
                raise HeaderValueError(f"invalid header: {raw!r} is not a mailbox list")
            out.append(
                {"name": entry.name or "", "entries": [_mailbox(a) for a in entry.addresses]}
            )
        else:
            out.append(_mailbox(entry))
    return out


def _quote_name(name: str) -> str:
    if not name.isascii():
        return header_qp_encode(name)
    if all(c in _ATEXT for c in name):
        return name
    escaped = "".join("\\" + c if c in '"\\' else c for c in name)
    return f'"{escaped}"'


def _addr_spec(address: Mapping[str, Any]) -> str:
    local, domain = str(address.get("local_part", "")), str(address.get("domain", ""))
    if not local or not all(c in _ATEXT or c == "." or not c.isascii() for c in local):
        local = '"' + "".join("\\" + c if c in '"\\' else c for c in local) + '"'
    return f"{local}@{domain}"


def encode_mailbox(mailbox: Mapping[str, Any]) -> str:
    if not isinstance(mailbox, Mapping):
        raise HeaderValueError("invalid header: a mailbox must be a table, "
                               f"got {lua_type_name(mailbox)}")
    address = mailbox.get("address")
    if not isinstance(address, Mapping):
        raise HeaderValueError("invalid header: a mailbox needs an address table")
    spec = _addr_spec(address)
    name = mailbox.get("name")
    return f"{_quote_name(str(name))} <{spec}>" if name is not None else f"<{spec}>"


def encode_address_list(entries: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise HeaderValueError("invalid header: an address must be a table")
        if "entries" in entry:
            members = ",\r\n\t".join(encode_mailbox(m) for m in entry["entries"] or [])
            out.append(f"{entry.get('name', '')}:{members};")
        else:
            out.append(encode_mailbox(entry))
    return ",\r\n\t".join(out)


# ------------------------------------------------------------------ message ids
def _is_id(word: str) -> bool:
    return "@" in word[1:-1]


def parse_message_id(raw: str, *, lenient: bool = False) -> str:
    text = raw.strip()
    found = _MSG_ID.fullmatch(text)
    if found is not None and _is_id(found.group(1)):
        return found.group(1)
    if lenient and text:  # a Content-ID without '@' or brackets, as real mail has
        return text.strip("<>")
    raise HeaderValueError(f"invalid header: {raw!r} is not a <message-id>")


def parse_message_ids(raw: str) -> list[str]:
    ids = _MSG_ID.findall(raw)
    if not ids or not all(map(_is_id, ids)) or _MSG_ID.sub("", raw).strip():
        raise HeaderValueError(f"invalid header: {raw!r} is not a list of <message-id>")
    return ids


def encode_message_ids(ids: Sequence[str]) -> str:
    return "\r\n\t".join(f"<{i}>" for i in ids)
