"""Domain-keyed tables with ``*.example.com`` wildcard entries, as KumoMTA's domain_map.

An exact entry wins; otherwise the wildcard of the nearest parent (``*.b.example.com``
before ``*.example.com``). ``*.example.com`` does not match ``example.com`` itself.
Names are compared without case and without a trailing dot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

V = TypeVar("V")


def normalize(domain: str) -> str:
    return domain.strip().lower().removesuffix(".")


class DomainMap(Generic[V]):
    def __init__(self, entries: Mapping[str, V] | None = None) -> None:
        self._exact: dict[str, V] = {}
        self._wild: dict[str, V] = {}
        for name, value in (entries or {}).items():
            self[name] = value

    def __setitem__(self, name: str, value: V) -> None:
        key = normalize(name)
        if key.startswith("*.") and len(key) > 2:
            self._wild[key[2:]] = value
        else:
            self._exact[key] = value

    def get(self, domain: str) -> V | None:
        key = normalize(domain)
        found = self._exact.get(key)
        if found is not None:
            return found
        labels = key.split(".")
        for start in range(1, len(labels)):
            found = self._wild.get(".".join(labels[start:]))
            if found is not None:
                return found
        return None

    def __iter__(self) -> Iterator[str]:
        yield from self._exact
        yield from (f"*.{parent}" for parent in self._wild)

    def __len__(self) -> int:
        return len(self._exact) + len(self._wild)
