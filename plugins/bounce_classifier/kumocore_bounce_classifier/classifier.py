"""Classifying SMTP responses: the first matching rule wins, results are cached.

KumoMTA compiles all rules into one Rust ``RegexSet`` and takes the lowest-index match.
CPython's ``re`` has no RegexSet. A combined alternation was measured and rejected: a
plain ``(?:a)|(?:b)`` reports the match that starts earliest in the text rather than the
first rule, and even alternations of one class's rules (where any match is as good) were
~12% slower than separate searches, apparently because a lone pattern keeps ``re``'s
per-pattern search optimisations that a union loses (numbers in docs/bounce-classification.md).

So the rules are compiled once and searched in order, stopping at the first match; and
since responses repeat (the same provider text for thousands of recipients), results are
memoised in two small LRU caches, as KumoMTA does: one for classified responses and a
separate one for Uncategorized, so a flood of unique unknown texts cannot evict the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kumocore_bounce_classifier.rules import UNCATEGORIZED, Rule


class LruCache:
    """A tiny LRU map over a dict (insertion order = recency); ``capacity`` 0 disables it."""

    __slots__ = ("_data", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        value = self._data.pop(key, None)
        if value is not None:
            self._data[key] = value  # re-insert: most recently used is last
        return value

    def put(self, key: str, value: str) -> None:
        if self.capacity <= 0:
            return
        self._data[key] = value
        if len(self._data) > self.capacity:
            # Another thread may have evicted meanwhile: losing a cache entry is harmless.
            try:
                del self._data[next(iter(self._data))]
            except (KeyError, RuntimeError, StopIteration):
                pass

    def __len__(self) -> int:
        return len(self._data)


class BounceClassifier:
    """Rules compiled once; :meth:`classify` maps a single-line response to a class name."""

    def __init__(
        self, rules: Sequence[Rule], *, cache_size: int = 1024, uncategorized_cache_size: int = 1024
    ) -> None:
        self.rules = tuple(rules)
        # Bound ``search`` methods and class names side by side: the hot loop does no
        # attribute lookups.
        self._searches = [re.compile(rule.pattern).search for rule in self.rules]
        self._classes = [rule.class_name for rule in self.rules]
        self._cache = LruCache(cache_size)
        self._uncategorized = LruCache(uncategorized_cache_size)

    def classify(self, text: str) -> str:
        """The class of ``text`` (``"550 5.1.1 user unknown"``), ``Uncategorized`` if none."""
        cached = self._cache.get(text) or self._uncategorized.get(text)
        if cached is not None:
            return cached
        index = self.rule_index(text)
        if index is None:
            self._uncategorized.put(text, UNCATEGORIZED)
            return UNCATEGORIZED
        result = self._classes[index]
        self._cache.put(text, result)
        return result

    def rule_index(self, text: str) -> int | None:
        """Index of the first rule matching ``text``, or None (no cache involved)."""
        for index, search in enumerate(self._searches):
            if search(text):
                return index
        return None

    def matching_rule(self, text: str) -> Rule | None:
        """The rule that classifies ``text``: which file and line decided it."""
        index = self.rule_index(text)
        return None if index is None else self.rules[index]
