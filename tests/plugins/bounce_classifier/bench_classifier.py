"""Classification speed of the default rules (numbers in docs/bounce-classification.md).

Run: ``.venv/bin/python -m tests.plugins.bounce_classifier.bench_classifier`` from the
repository root. Inputs are the realistic provider responses of the classification table.
Besides the shipped engine it times the two combined-regex designs that were rejected, so
the decision can be re-checked on another Python or machine.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable

from kumocore_bounce_classifier import BounceClassifier, Rule, default_rules_path, load_rules

from tests.plugins.bounce_classifier.responses import CASES

_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


def _scoped(pattern: str) -> str:
    flags = _FLAGS.match(pattern)
    return f"(?{flags[1]}:{pattern[flags.end() :]})" if flags else f"(?:{pattern})"


def first_rule_alternation(rules: list[Rule]) -> Callable[[str], str]:
    """One regex tried at position 0 whose branches each scan: first branch that matches."""
    parts = [f"(?P<r{i}>(?s:.*?){_scoped(r.pattern)})" for i, r in enumerate(rules)]
    match = re.compile("|".join(parts)).match
    classes = [r.class_name for r in rules]

    def classify(text: str) -> str:
        found = match(text)
        return classes[int(found.lastgroup[1:])] if found and found.lastgroup else "Uncategorized"

    return classify


def class_run_alternation(rules: list[Rule]) -> Callable[[str], str]:
    """One alternation per run of same-class rules, searched in order."""
    runs = [
        (re.compile("|".join(_scoped(r.pattern) for r in group)).search, name)
        for name, group in (
            (k, list(g)) for k, g in itertools.groupby(rules, lambda r: r.class_name)
        )
    ]

    def classify(text: str) -> str:
        return next((name for search, name in runs if search(text)), "Uncategorized")

    return classify


def rate(fn: Callable[[str], object], texts: list[str], rounds: int = 5) -> float:
    """Classifications per second, best of ``rounds`` passes over ``texts`` x 20."""
    batch = texts * 20
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for text in batch:
            fn(text)
        best = max(best, len(batch) / (time.perf_counter() - start))
    return best


def main() -> None:
    rules = load_rules(default_rules_path())
    texts = [text for text, _ in CASES]
    uncached = BounceClassifier(rules, cache_size=0, uncategorized_cache_size=0)
    cached = BounceClassifier(rules)
    for text, want in CASES:  # the alternatives must agree before their speed counts
        assert first_rule_alternation(rules)(text) == class_run_alternation(rules)(text) == want
    mean = sum(map(len, texts)) // len(texts)
    print(f"{len(rules)} rules, {len(texts)} distinct responses (mean {mean} chars)")
    print(f"shipped, uncached (rules in order) : {rate(uncached.classify, texts):>12,.0f} /s")
    print(f"shipped, cached (LRU hit)          : {rate(cached.classify, texts):>12,.0f} /s")
    for label, fn in (
        ("rejected: first-rule alternation ", first_rule_alternation(rules)),
        ("rejected: class-run alternations ", class_run_alternation(rules)),
    ):
        print(f"{label}  : {rate(fn, texts):>12,.0f} /s")


if __name__ == "__main__":
    main()
