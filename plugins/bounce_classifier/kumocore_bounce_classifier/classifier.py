"""Classifying SMTP responses: the first matching rule wins, results are cached.

KumoMTA compiles all rules into one Rust ``RegexSet`` and takes the lowest-index match.
Python has no RegexSet, and a plain alternation ``a|b`` is no substitute: ``re.search``
returns the match that starts *earliest in the text*, not the first alternative. So each
rule becomes a named group that is tried at position 0 with ``re.match`` and scans for
itself (``(?P<_r0>.*?(?:a))|(?P<_r1>.*?(?:b))``): the engine tries the alternatives in rule
order, so the first rule that matches anywhere wins, all inside the C regex engine.
Anchored rules (``^550 5\\.1\\.1 ``, most code rules) skip the ``.*?`` and cost O(1).

Responses repeat a lot (the same provider texts for thousands of recipients), so results
are memoised in two small LRU caches, as KumoMTA does: one for classified responses and a
separate one for Uncategorized, so a flood of unique unknown texts cannot evict the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kumocore_bounce_classifier.rules import UNCATEGORIZED, Rule

_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


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
        self._classes = [rule.class_name for rule in self.rules]
        self._combined = _combine([rule.pattern for rule in self.rules])
        self._each = [re.compile(rule.pattern) for rule in self.rules]
        self._cache = LruCache(cache_size)
        self._uncategorized = LruCache(uncategorized_cache_size)

    @property
    def uses_combined_regex(self) -> bool:
        """False when some pattern cannot be combined (then rules are tried one by one)."""
        return self._combined is not None

    def classify(self, text: str) -> str:
        """The class of ``text`` (``"550 5.1.1 user unknown"``), ``Uncategorized`` if none."""
        cached = self._cache.get(text) or self._uncategorized.get(text)
        if cached is not None:
            return cached
        result = self.match(text)
        if result == UNCATEGORIZED:
            self._uncategorized.put(text, result)
        else:
            self._cache.put(text, result)
        return result

    def match(self, text: str) -> str:
        """:meth:`classify` without the cache."""
        if self._combined is not None:
            found = self._combined.match(text)
            if found is None or found.lastgroup is None:
                return UNCATEGORIZED
            return self._classes[int(found.lastgroup[2:])]
        for index, regex in enumerate(self._each):
            if regex.search(text):
                return self._classes[index]
        return UNCATEGORIZED

    def matching_rule(self, text: str) -> Rule | None:
        """The rule that decides ``text`` (for diagnostics: which line classified this?)."""
        for index, regex in enumerate(self._each):
            if regex.search(text):
                return self.rules[index]
        return None


def _combine(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regex trying every pattern in order at position 0, or None if not possible.

    Back-references count groups from the start of the whole expression, so a pattern
    using them would change meaning once combined: such rule sets are matched one by one.
    """
    if not patterns or any(re.search(r"\\[1-9]|\(\?P=", p) for p in patterns):
        return None
    parts = []
    for index, pattern in enumerate(patterns):
        # A leading global flag group such as (?i) is only legal at the very start of the
        # whole expression, so turn it into a scoped group: (?i)abc -> (?i:abc).
        flags = _LEADING_FLAGS.match(pattern)
        body = pattern[flags.end() :] if flags else pattern
        # (?s:.*?) rather than a global DOTALL, so that '.' in the rules keeps its meaning.
        scan = "" if body.startswith("^") and not _has_top_level_bar(body) else "(?s:.*?)"
        inner = f"(?{flags[1]}:{body})" if flags else f"(?:{body})"
        parts.append(f"(?P<_r{index}>{scan}{inner})")
    try:
        return re.compile("|".join(parts))
    except (re.error, RecursionError, OverflowError):
        return None


def _has_top_level_bar(pattern: str) -> bool:
    """Whether ``pattern`` has a ``|`` outside groups and classes (``^a|b`` is unanchored)."""
    depth, in_class, i = 0, False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a leading ']' is a literal in the class
                i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        i += 1
    return False
