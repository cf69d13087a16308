"""Marking functions contributed to the ``kumo`` policy module.

KumoMTA's Lua API mixes two calling styles: ``kumo.define_spool { name = 'data', ... }``
takes one options table, ``kumo.dns.lookup_mx('gmail.com')`` takes positional arguments.
A contributed function declares which it is, so that the Lua bridge and the Python ``kumo``
object can call it the same way: table-style functions always receive keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kumocore.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

_TABLE_ATTR = "__kumo_table__"


def policy_function(*, table: bool) -> Callable[[F], F]:
    """Declare the calling style of a ``kumo.*`` function.

    ``table=True``: the Lua form is ``kumo.fn { key = value }`` and the Python function is
    called as ``fn(key=value)``. ``table=False``: arguments are passed positionally.
    """

    def mark(fn: F) -> F:
        setattr(fn, _TABLE_ATTR, table)
        return fn

    return mark


def takes_table(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` was declared ``@policy_function(table=True)``."""
    return bool(getattr(fn, _TABLE_ATTR, False))


class MultipleValues(tuple[Any, ...]):
    """Return this from a ``kumo.*`` function to give Lua several return values.

    ``return MultipleValues((ip, reason))`` reads in Lua as ``local ip, reason = f()``;
    Python policies receive the tuple. (A plain tuple becomes one Lua array.)
    """

    __slots__ = ()


def lua_type_name(value: Any) -> str:
    """The Lua type a policy's value came from, for the errors a ``kumo.*`` function
    raises ("must be a string, got table"): policies are mostly Lua."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | bytes):
        return "string"
    if isinstance(value, Mapping | list | tuple):
        return "table"
    return "function" if callable(value) else type(value).__name__


def string_argument(who: str, what: str, value: Any, *, empty: bool = True) -> str:
    """``value`` when it is a string (and not empty, unless ``empty``); else a
    :class:`~kumocore.errors.ConfigError` naming the function, the argument and what the
    policy gave in Lua's terms: ``kumo.make_throttle: NAME must be a non-empty string,
    got nil``."""
    if isinstance(value, str) and (empty or value):
        return value
    got = "an empty string" if isinstance(value, str) else lua_type_name(value)
    wanted = "a string" if empty else "a non-empty string"
    raise ConfigError(f"{who}: {what} must be {wanted}, got {got}")
