"""Where an option value sits and how it is converted: :class:`Path` and :class:`Conv`.

A :class:`Conv` loads a policy's value (raising ``path.invalid(...)``, which names the key
as the policy wrote it, ``domains["x.com"].relay_from[2]``) and dumps it back. The table
checks every converter and :class:`~kumocore.config.options.Options` class share are here
too: :func:`check_keys` (serde's ``deny_unknown_fields``), and :func:`as_table` /
:func:`as_list`, which accept an empty Lua table as either. The converters themselves are
:mod:`kumocore.config.converters`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kumocore.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Path:
    """Where a value sits in a policy's options, for error messages."""

    function: str
    key: str = ""

    def child(self, name: str) -> Path:
        return Path(self.function, f"{self.key}.{name}" if self.key else name)

    def item(self, index: int | str) -> Path:
        """A list element (1-based, as Lua counts) or a map entry, in Lua's syntax."""
        suffix = f'["{index}"]' if isinstance(index, str) else f"[{index}]"
        return Path(self.function, self.key + suffix)

    def invalid(self, reason: str, value: Any) -> ConfigError:
        where = f"{self.key!r} in {self.function}" if self.key else f"options of {self.function}"
        # "invalid value" as serde words it: KumoMTA's typing helper tells a bad value of
        # a known option from an unknown option by that word (policy-extras.typing).
        return ConfigError(f"invalid value for {where}: {reason}, got {_show(value)}")


def same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Conv:
    """How an option is loaded (``load(value, path)``, raising ``path.invalid(...)``)
    and dumped back by ``to_dict``."""

    load: Callable[[Any, Path], Any]
    dump: Callable[[Any], Any] = same


def check_keys(table: Mapping[Any, Any], allowed: Iterable[str], path: Path) -> None:
    """Refuse a key not in ``allowed``, listing the allowed ones (serde's deny_unknown_fields)."""
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown key {path.child(str(key)).key!r} for {path.function}{hint}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def _show(value: Any) -> str:
    """The value as a Lua policy author would recognise it."""
    if value is None or isinstance(value, bool):
        return {None: "nil", True: "true", False: "false"}[value]
    if isinstance(value, Mapping | list | tuple):
        return "a table" if isinstance(value, Mapping) else "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_table(value: Any, path: Path) -> Mapping[Any, Any]:
    if isinstance(value, Mapping) or value in ([], ()):  # an empty Lua table may be a list
        return value or {}
    raise path.invalid("expected a table", value)


def as_list(value: Any, path: Path) -> Sequence[Any]:
    if isinstance(value, list | tuple) or value == {}:  # an empty Lua table may be a dict
        return value or []
    raise path.invalid("expected a list", value)
