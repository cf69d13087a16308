"""``kumo.regex.*`` and ``kumo.regex_set_map.new``: regular expressions as KumoMTA offers them.

KumoMTA uses Rust's ``regex``/``fancy-regex`` syntax; Python's ``re`` reads the same
patterns except for the named group spelling ``(?<name>...)``, which is rewritten to
``(?P<name>...)`` here. Replacement strings use Rust's ``$1``/``${name}``/``$$`` syntax.

A compiled :class:`Regex` has methods (``re:is_match(s)`` in Lua, ``re.is_match(s)`` in
Python); a :class:`RegexSetMap` is indexed like a table (``map['some text']``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kumocore import ConfigError
from kumocore_lua_policy.stdlib.arguments import string_arg

_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?=[A-Za-z_])")
_REPLACEMENT_REF = re.compile(r"\$(\$|\{([^}]*)\}|([A-Za-z0-9_]+))")


def compile_pattern(pattern: str, *, who: str = "kumo.regex.compile") -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ConfigError(f"{who}: the pattern must be a string, got {pattern!r}")
    try:
        return re.compile(_NAMED_GROUP.sub("(?P<", pattern))
    except re.error as exc:
        raise ConfigError(f"{who}: invalid regex {pattern!r}: {exc}") from None


def _group(match: re.Match[str], ref: str) -> str:
    try:
        value = match.group(int(ref) if ref.isdigit() else ref)
    except (IndexError, re.error):
        return ""  # as Rust: an unknown group expands to nothing
    return value or ""


def _expander(replacement: str) -> Callable[[re.Match[str]], str]:
    def expand(match: re.Match[str]) -> str:
        def ref(m: re.Match[str]) -> str:
            if m.group(1) == "$":
                return "$"
            return _group(match, m.group(2) if m.group(2) is not None else m.group(3))

        return _REPLACEMENT_REF.sub(ref, replacement)

    return expand


class Regex:
    """A compiled pattern (``kumo.regex.compile``)."""

    lua_methods = True  # Lua calls its methods with ':' (see the bridge's object proxy)

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._re = compile_pattern(pattern)

    def __str__(self) -> str:
        return self.pattern

    def is_match(self, haystack: str) -> bool:
        return self._re.search(haystack) is not None

    def find(self, haystack: str) -> str | None:
        match = self._re.search(haystack)
        return None if match is None else match.group(0)

    def find_all(self, haystack: str) -> list[str]:
        return [m.group(0) for m in self._re.finditer(haystack)]

    def captures(self, haystack: str) -> dict[int | str, str] | None:
        """Index 0 is the whole match, 1.. the groups, plus named groups by name."""
        match = self._re.search(haystack)
        if match is None:
            return None
        result: dict[int | str, str] = {0: match.group(0)}
        for index, value in enumerate(match.groups(), 1):
            if value is not None:
                result[index] = value
        for name, value in match.groupdict().items():
            if value is not None:
                result[name] = value
        return result

    def replace(self, text: str, replacement: str) -> str:
        return self._re.sub(_expander(replacement), text, count=1)

    def replace_all(self, text: str, replacement: str) -> str:
        return self._re.sub(_expander(replacement), text)

    def replacen(self, text: str, limit: int, replacement: str) -> str:
        if not isinstance(limit, int) or limit < 0:
            raise ConfigError(f"regex:replacen: LIMIT must be a non-negative integer: {limit!r}")
        if limit == 0:
            return self.replace_all(text, replacement)  # Rust: 0 means no limit
        return self._re.sub(_expander(replacement), text, count=limit)

    def split(self, text: str) -> list[str]:
        pieces, start = [], 0
        for match in self._re.finditer(text):
            pieces.append(text[start:match.start()])
            start = match.end()
        pieces.append(text[start:])
        return pieces


def escape(text: str) -> str:
    return re.escape(string_arg("kumo.regex.escape", "TEXT", text))


def is_match(pattern: str, haystack: str) -> bool:
    """A kumocore convenience: ``kumo.regex.is_match(pattern, haystack)``."""
    text = string_arg("kumo.regex.is_match", "HAYSTACK", haystack)
    return compile_pattern(pattern, who="kumo.regex.is_match").search(text) is not None


class RegexSetMap:
    """``kumo.regex_set_map.new{pattern = value}``: ``map[text]`` is the value of the first
    pattern (in the order given) that matches anywhere in ``text``, else nil."""

    lua_proxy = "map"  # Lua indexes it like a table

    def __init__(self, mapping: Mapping[str, Any] | None = None) -> None:
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            raise ConfigError("kumo.regex_set_map.new takes a table of pattern = value pairs")
        self._entries = [
            (compile_pattern(str(k), who="kumo.regex_set_map.new"), v) for k, v in mapping.items()
        ]

    def get(self, text: Any, default: Any = None) -> Any:
        if not isinstance(text, str):
            return default
        for pattern, value in self._entries:
            if pattern.search(text):
                return value
        return default

    def __getitem__(self, text: str) -> Any:
        return self.get(text)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise ConfigError("a kumo.regex_set_map is immutable: build it with all its entries")

    def pop(self, key: Any, default: Any = None) -> Any:
        self.__setitem__(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(p.pattern for p, _ in self._entries)


def regex_functions() -> dict[str, Callable[..., Any]]:
    return {
        "regex.compile": Regex,
        "regex.escape": escape,
        "regex.is_match": is_match,
        "regex_set_map.new": RegexSetMap,
    }
