"""TOML text as KumoMTA writes it: ``kumo.serde.toml_encode`` (the ``toml`` crate's
``to_string``), ``toml_encode_pretty`` (``to_string_pretty``) and
``toml_encode_pretty_compact`` (what ``kumo.format_*_toml`` and kcli print).

The layout follows the crate (0.9): a table's plain values first, then its sub-tables,
each under a ``[dotted.name]`` header and after a blank line; a table that holds only
sub-tables gets no header of its own (``[a.b]`` alone, no ``[a]``), while an empty one
keeps its header (the compact form writes it inline as ``name = {}`` instead). ``None``
values are left out (TOML has no null). Strings are basic strings with TOML's escapes:
``\\b \\t \\n \\f \\r \\" \\\\`` and ``\\uXXXX`` for every other control character and DEL.

Not the crate's: a string is always a basic string (the crate may pick a literal
``'...'`` or a multi-line one), and a list of tables stays an inline array (the crate
writes ``[[name]]`` sections). Both read back the same.

A leaf: it imports nothing of kumocore, so the admin texts, the policy functions and the
Lua plugin (through ``kumocore``'s public API) share it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "toml_basic_string",
    "toml_encode",
    "toml_encode_pretty",
    "toml_encode_pretty_compact",
]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: What a basic string may not hold as is: control characters, DEL, ``"`` and ``\``.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')
_SHORT_ESCAPES = {
    "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Style:
    sort: bool  # keys sorted at every level (the compact form)
    multiline_arrays: bool  # an array of two or more items, one item a line (pretty)
    inline_empty: bool  # an empty table as ``name = {}`` rather than a ``[name]`` header


def toml_encode(table: Mapping[Any, Any]) -> str:
    """``toml::to_string``: keys in the table's order, arrays on one line."""
    return _document(table, _Style(sort=False, multiline_arrays=False, inline_empty=False))


def toml_encode_pretty(table: Mapping[Any, Any]) -> str:
    """``toml::to_string_pretty``: as :func:`toml_encode`, but an array of two or more
    items is written one item a line."""
    return _document(table, _Style(sort=False, multiline_arrays=True, inline_empty=False))


def toml_encode_pretty_compact(table: Mapping[Any, Any]) -> str:
    """KumoMTA's ``toml_encode_pretty_compact``: keys sorted at every level, empty tables
    inline as ``{}``, arrays on one line."""
    return _document(table, _Style(sort=True, multiline_arrays=False, inline_empty=True))


def toml_basic_string(text: str) -> str:
    """``text`` as a TOML basic string (``"..."``), escaped as TOML requires."""
    return '"' + _UNSAFE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04X}"


def _key(key: Any) -> str:
    key = str(key)
    return key if _BARE_KEY.fullmatch(key) else toml_basic_string(key)


def _entries(table: Mapping[Any, Any], style: _Style) -> list[tuple[Any, Any]]:
    entries = [(key, value) for key, value in table.items() if value is not None]
    return sorted(entries, key=lambda entry: str(entry[0])) if style.sort else entries


def _value(value: Any, style: _Style) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 'nan', 'inf', '-inf' and exponents are TOML too
    if isinstance(value, str):
        return toml_basic_string(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)} = {_value(v, style)}" for k, v in _entries(value, style))
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, list | tuple):
        items = [_value(item, style) for item in value]
        if style.multiline_arrays and len(items) >= 2:
            return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
        return "[" + ", ".join(items) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as TOML")


def _is_table(value: Any, style: _Style) -> bool:
    """Written under a header of its own, rather than as ``key = value``."""
    if not isinstance(value, Mapping):
        return False
    return not style.inline_empty or any(v is not None for v in value.values())


def _tables(out: list[str], path: str, table: Mapping[Any, Any], style: _Style) -> None:
    """Appends the text of ``table`` (when the crate writes one) and of its sub-tables."""
    body: list[str] = []
    children: list[tuple[str, Mapping[Any, Any]]] = []
    for key, value in _entries(table, style):
        if _is_table(value, style):
            name = f"{path}.{_key(key)}" if path else _key(key)
            children.append((name, value))
        else:
            body.append(f"{_key(key)} = {_value(value, style)}\n")
    # The root has no header; a table with nothing but sub-tables needs none.
    if body or (path and not children):
        out.append((f"[{path}]\n" if path else "") + "".join(body))
    for name, child in children:
        _tables(out, name, child, style)


def _document(table: Mapping[Any, Any], style: _Style) -> str:
    out: list[str] = []
    _tables(out, "", table, style)
    return "\n".join(out)
