"""``python -m kumocore_bounce_classifier [response ...]``.

Without arguments: print the bundled rules file's path (to list it in a Lua policy's
``files``). With arguments: classify each response with the bundled rules and show which
rule decided it, e.g. ``python -m kumocore_bounce_classifier "550 5.1.1 user unknown"``.
"""

from __future__ import annotations

import sys

from kumocore_bounce_classifier import BounceClassifier, default_rules_path, load_rules


def main(argv: list[str]) -> int:
    if not argv:
        print(default_rules_path())
        return 0
    classifier = BounceClassifier(load_rules(default_rules_path()))
    for text in argv:
        rule = classifier.matching_rule(text)
        where = f"  ({rule.where}: {rule.pattern})" if rule else ""
        print(f"{rule.class_name if rule else 'Uncategorized'}{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
