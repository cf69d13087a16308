"""Which meta keys and headers a log sink gets: KumoMTA's ``meta``/``headers`` selection.

A record keeps the message's meta and only the header pairs some sink could select
(:func:`capture_headers`); each sink's own lists are applied late, when the record is
written (:func:`select_meta`, :func:`select_headers`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

#: (name, value) pairs in message order.
HeaderPairs = tuple[tuple[str, str], ...]

_NO_HEADERS: HeaderPairs = ()


class _HasHeaders(Protocol):
    def get_all_headers(self) -> list[tuple[str, str]]: ...


#: A compiled ``meta``/``headers`` name list: (exact names, ``prefix*`` prefixes).
_Selector = tuple[tuple[str, ...], tuple[str, ...]]


@lru_cache(maxsize=256)
def _compile(names: tuple[str, ...], fold_case: bool) -> _Selector:
    # Sinks pass the same configured list for every record; caching the compiled form keeps
    # to_json free of per-record parsing.
    names = tuple(n.lower() for n in names) if fold_case else names
    return (tuple(n for n in names if not n.endswith("*")),
            tuple(n[:-1] for n in names if n.endswith("*")))


def _header_wanted(sel: _Selector, lower_name: str) -> bool:
    return lower_name in sel[0] or lower_name.startswith(sel[1])


def select_meta(meta: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """KumoMTA's meta selection: case-sensitive; ``x_*`` takes every key with that prefix
    (null values included); an exact name is skipped when absent or null."""
    exact, prefixes = _compile(tuple(names), False)
    selected = {name: meta[name] for name in exact if meta.get(name) is not None}
    if prefixes:
        selected.update((k, v) for k, v in meta.items() if k.startswith(prefixes))
    return selected


def select_headers(pairs: Iterable[tuple[str, str]], names: Sequence[str]) -> dict[str, Any]:
    """KumoMTA's header selection: names match case-insensitively (``X-*`` by prefix); the
    key is the header's own spelling (first occurrence) and a repeated header gives a list
    of its values in message order."""
    if not names:
        return {}
    sel = _compile(tuple(names), True)
    grouped: dict[str, tuple[str, list[str]]] = {}
    for name, value in pairs:
        lower = name.lower()
        if _header_wanted(sel, lower):
            grouped.setdefault(lower, (name, []))[1].append(value)
    return {
        spelling: values[0] if len(values) == 1 else values for spelling, values in grouped.values()
    }


def capture_headers(message: _HasHeaders, names: Sequence[str]) -> HeaderPairs:
    """The header pairs any of ``names`` could select, or ``()`` when nobody wants headers.

    Records outlive their message: they wait in sink buffers after delivery dropped the
    body. Holding the message (or its whole header block) would pin that memory for every
    buffered record, and reading headers may load the body back from the spool (KumoMTA
    warns about that cost). So a record keeps only the pairs some sink asked for (the union
    of the sinks' ``header_names``); when none wants headers — the common case — it stores
    the shared empty tuple without touching the message at all.
    """
    if not names:
        return _NO_HEADERS
    sel = _compile(tuple(names), True)
    return tuple((n, v) for n, v in message.get_all_headers() if _header_wanted(sel, n.lower()))
