"""``msg:import_headers(SPECS)``: copy header values into meta, KumoMTA's way.

Each spec is a table: ``name`` (required; a header name, or a prefix ending in one ``*``
such as ``X-*``; always case-insensitive), ``match`` (``'first'``, ``'last'`` — the
default — or ``'all'``, an array of every value), ``transform`` (how the meta key is
derived from the header name as written: ``'snake_case'`` — the default,
``X-Campaign-Id`` → ``x_campaign_id`` — ``'kebab_case'``, ``'camel_case'``,
``'pascal_case'``), ``target`` (an explicit meta key; not with a wildcard) and ``remove``
(drop the matched headers from the message). Each header goes to the first spec that
matches it; a spec that matches nothing writes nothing. Values are unfolded and RFC 2047
decoded, as ``msg:get_first_named_header_value`` returns them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kumocore.mail.headers import HeaderField
from kumocore.policy.policyfn import lua_type_name

__all__ = ["HeaderImportError", "ImportSpec", "collect_imports", "parse_specs"]

_FIELDS = ("name", "match", "transform", "target", "remove")
_MATCHES = ("first", "last", "all")
_TRANSFORMS = ("snake_case", "kebab_case", "camel_case", "pascal_case")


class HeaderImportError(ValueError):
    """A malformed ``import_headers`` spec."""


@dataclass(frozen=True, slots=True)
class ImportSpec:
    """One compiled spec: ``name`` lower-cased; ``prefix`` when it ended in ``*``."""

    name: str
    prefix: bool
    match: str
    transform: str
    target: str | None
    remove: bool

    def matches(self, header_name: str) -> bool:
        lowered = header_name.lower()
        return lowered.startswith(self.name) if self.prefix else lowered == self.name

    def key(self, header_name: str) -> str:
        return self.target if self.target is not None else transform_name(
            header_name, self.transform)


def _title(part: str) -> str:
    return part[:1].upper() + part[1:].lower()


def transform_name(name: str, transform: str) -> str:
    """The meta key for header ``name`` under ``transform``."""
    parts = name.split("-")
    if transform == "kebab_case":
        return "-".join(p.lower() for p in parts)
    if transform == "camel_case":
        return parts[0].lower() + "".join(_title(p) for p in parts[1:])
    if transform == "pascal_case":
        return "".join(_title(p) for p in parts)
    return name.lower().replace("-", "_")


def _choice(spec: Mapping[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = spec.get(field)
    if value is None:
        return allowed[0] if field == "transform" else "last"
    if value not in allowed:
        raise HeaderImportError(
            f"import_headers: unknown {field} {value!r}, expected one of "
            + ", ".join(f"'{a}'" for a in allowed))
    return str(value)


def _compile(spec: Any) -> ImportSpec:
    if not isinstance(spec, Mapping):
        raise HeaderImportError(
            f"import_headers: each spec must be a table, got {lua_type_name(spec)}")
    unknown = sorted(str(k) for k in spec if k not in _FIELDS)
    if unknown:
        raise HeaderImportError(f"import_headers: unknown field `{unknown[0]}`, expected "
                                "one of " + ", ".join(f"`{f}`" for f in _FIELDS))
    name = spec.get("name")
    if not isinstance(name, str):
        raise HeaderImportError("import_headers: each spec needs a string `name`")
    if not name:
        raise HeaderImportError("import_headers: header name pattern must not be empty")
    stars = name.count("*")
    if stars and (stars > 1 or not name.endswith("*")):
        raise HeaderImportError(
            f"import_headers: only a single trailing `*` is supported in pattern {name!r}")
    if name == "*":
        raise HeaderImportError("import_headers: bare `*` patterns are not supported")
    target = spec.get("target")
    if target is not None and not isinstance(target, str):
        raise HeaderImportError("import_headers: `target` must be a string")
    if target is not None and stars:
        raise HeaderImportError(
            f"import_headers: `target` cannot be used with wildcard pattern {name!r}")
    remove = spec.get("remove", False)
    if not isinstance(remove, bool):
        raise HeaderImportError("import_headers: `remove` must be a boolean")
    return ImportSpec(name.rstrip("*").lower(), bool(stars), _choice(spec, "match", _MATCHES),
                      _choice(spec, "transform", _TRANSFORMS), target, remove)


def parse_specs(specs: Any) -> list[ImportSpec]:
    """Compile SPECS (an array of spec tables); HeaderImportError when malformed."""
    if isinstance(specs, Mapping) and not specs:
        return []  # an empty Lua table
    if not isinstance(specs, Sequence) or isinstance(specs, str | bytes):
        raise HeaderImportError("import_headers: SPECS must be an array of tables")
    return [_compile(spec) for spec in specs]


def collect_imports(
    specs: list[ImportSpec], fields: list[HeaderField]
) -> tuple[dict[str, Any], list[HeaderField]]:
    """``(meta updates in write order, fields to remove)`` for the message's fields."""
    found: list[dict[str, Any]] = [{} for _ in specs]
    removed: list[HeaderField] = []
    for field in fields:
        for index, spec in enumerate(specs):
            if not spec.matches(field.name):
                continue
            key, acc = spec.key(field.name), found[index]
            if spec.match == "all":
                acc.setdefault(key, []).append(field.value)
            elif spec.match == "last" or key not in acc:
                acc[key] = field.value
            if spec.remove:
                removed.append(field)
            break
    updates: dict[str, Any] = {}
    for acc in found:  # spec order: a later spec writing the same key wins
        for key in sorted(acc):
            updates.pop(key, None)
            updates[key] = acc[key]
    return updates, removed
