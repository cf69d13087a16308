"""``msg:add_authentication_results(serv_id, results)``: the ``Authentication-Results``
header of RFC 8601, rendered the way KumoMTA renders it.

``results`` is an array of *authenticationresult* tables — what ``msg:dkim_verify()``
returns: ``method`` and ``result`` (strings, required), ``method_version`` (integer),
``reason`` (string) and ``props`` (string keys and values). Any other field is refused,
as KumoMTA refuses it. The header value is::

    serv-id;
    \\tmethod[/version]=result[ reason=...]
    \\tprop.name=value            (one line per prop, props sorted by name)

one ``;``-separated result per method, each folded onto its own line; with no results
it is ``serv-id; none``. The serv-id, method, result, reason and prop values are written
as a MIME token when they can be (``@`` is allowed bare) and as a quoted string
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kumocore.policy.policyfn import lua_type_name

__all__ = ["AuthResultsError", "render_authentication_results"]

# RFC 2045 tspecials: with space, controls and non-ASCII, what a MIME token may not hold.
_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')
_FIELDS = ("method", "method_version", "result", "reason", "props")


class AuthResultsError(ValueError):
    """A results table that is not an array of authenticationresult objects."""


def _value_token(value: str) -> str:
    """``value`` as a MIME token when it is one (``@`` allowed), else a quoted string."""
    if value and all(
        ("!" <= c <= "~" and c not in _TSPECIALS) or c == "@" for c in value
    ):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise AuthResultsError(f"{what}: expected a string, got {lua_type_name(value)}")
    if "\r" in value or "\n" in value:
        raise AuthResultsError(f"{what}: contains a line break")
    return value


def _entries(results: Any) -> list[Mapping[str, Any]]:
    """The results as a list; a Lua array arrives as a list, or as a dict keyed 1..n."""
    if isinstance(results, Mapping):
        if not results:
            return []
        if sorted(results) != list(range(1, len(results) + 1)):
            raise AuthResultsError("results: expected an array of authenticationresult")
        results = [results[i] for i in range(1, len(results) + 1)]
    if not isinstance(results, Sequence) or isinstance(results, str | bytes):
        raise AuthResultsError(
            f"results: expected an array of authenticationresult, got "
            f"{lua_type_name(results)}")
    for index, entry in enumerate(results, 1):
        if not isinstance(entry, Mapping):
            raise AuthResultsError(f"results[{index}]: expected an authenticationresult "
                                   f"table, got {lua_type_name(entry)}")
    return list(results)


def _render_one(index: int, entry: Mapping[str, Any], nl: str) -> str:
    where = f"results[{index}]"
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise AuthResultsError(f"{where}: unknown field `{unknown[0]}`, expected one of "
                               + ", ".join(f"`{f}`" for f in _FIELDS))
    for required in ("method", "result"):
        if entry.get(required) is None:
            raise AuthResultsError(f"{where}: missing field `{required}`")
    text = _value_token(_text(entry["method"], f"{where}.method"))
    version = entry.get("method_version")
    if version is not None:
        if isinstance(version, float) and version.is_integer():
            version = int(version)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise AuthResultsError(f"{where}.method_version: expected a non-negative "
                                   f"integer, got {version!r}")
        text += f"/{version}"
    text += "=" + _value_token(_text(entry["result"], f"{where}.result"))
    reason = entry.get("reason")
    if reason is not None:
        text += " reason=" + _value_token(_text(reason, f"{where}.reason"))
    props = entry.get("props")
    if props is None:
        props = {}
    if not isinstance(props, Mapping):
        raise AuthResultsError(f"{where}.props: expected a table of strings")
    for key in sorted(props, key=str):
        name = _text(key, f"{where}.props key")
        value = _text(props[key], f"{where}.props[{key!r}]")
        text += f"{nl}\t{name}=" + _value_token(value)
    return text


def render_authentication_results(serv_id: Any, results: Any, nl: str = "\r\n") -> str:
    """The value of the ``Authentication-Results`` header (folded with ``nl``)."""
    head = _value_token(_text(serv_id, "serv_id"))
    entries = _entries([] if results is None else results)
    if not entries:
        return f"{head}; none"
    return head + "".join(
        f";{nl}\t" + _render_one(i, entry, nl) for i, entry in enumerate(entries, 1))
