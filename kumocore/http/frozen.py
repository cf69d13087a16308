"""Read-only JSON values for templates (see :mod:`kumocore.http.templating` for why).

The ``minijinja`` binding hands Python dicts and lists to templates as the objects
themselves, methods included; these subclasses keep the reading methods and refuse the
mutating ones, and whatever a method returns is frozen too.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "freeze"]


def _read_only(*args: object, **kwargs: object) -> NoReturn:
    raise TypeError("substitution values are read-only in templates")


class FrozenList(list[Any]):
    """A JSON array for a template: every mutating method raises ``TypeError``.

    A ``list`` subclass rather than a tuple, so that it prints as a list does.
    """

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only

    def copy(self) -> FrozenList:  # type: ignore[override]
        return self


class FrozenDict(dict[str, Any]):
    """A JSON object for a template: every mutating method raises ``TypeError``."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only
    fromkeys = classmethod(_read_only)  # type: ignore[assignment,var-annotated]

    def copy(self) -> FrozenDict:
        return self

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else freeze(default)

    def keys(self) -> FrozenList:  # type: ignore[override]
        return FrozenList(dict.keys(self))

    def values(self) -> FrozenList:  # type: ignore[override]
        return FrozenList(dict.values(self))

    def items(self) -> FrozenList:  # type: ignore[override]
        return FrozenList(FrozenList(pair) for pair in dict.items(self))


#: The frozen empty object, shared: most recipients have no substitutions, and a new one
#: for each of 80,000 was a fifth of checking a request.
_EMPTY = FrozenDict()


def freeze(value: Any) -> Any:
    """``value`` with every dict and list (at any depth) made read-only."""
    if isinstance(value, dict):
        if not value:
            return _EMPTY
        return FrozenDict((str(k), freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return FrozenList(freeze(v) for v in value)
    return value
