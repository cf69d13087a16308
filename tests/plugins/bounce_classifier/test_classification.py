"""Classification through the ``kumo_classify_bounce`` hook: the default rules on realistic
provider replies, first-rule-wins across files, JSON files, and the result caches."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from kumocore_bounce_classifier import (
    PREDEFINED_CLASSES,
    BounceClassifier,
    Rule,
    default_rules_path,
    load_rules,
)

from tests.plugins.bounce_classifier.conftest import Classify, Configure
from tests.plugins.bounce_classifier.responses import CASES


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[f"{c[1]}-{c[0][:40]}" for c in CASES])
def test_default_rules_classify_provider_replies(
    configure: Configure, classify: Classify, line: str, expected: str
) -> None:
    configure(files=[default_rules_path()])
    assert classify(line) == expected


def test_classification_table_covers_every_class_of_the_default_rules() -> None:
    shipped = set(tomllib.loads(Path(default_rules_path()).read_text())["rules"])
    assert shipped <= set(PREDEFINED_CLASSES)
    assert shipped <= {expected for _, expected in CASES}


def test_predefined_classes_are_kumomtas_29() -> None:
    assert len(PREDEFINED_CLASSES) == len(set(PREDEFINED_CLASSES)) == 29
    assert {"InvalidRecipient", "SpamBlock", "Uncategorized"} <= set(PREDEFINED_CLASSES)


def test_unconfigured_classifier_answers_none(classify: Classify) -> None:
    assert classify("550 5.1.1 user unknown") is None


def test_no_matching_rule_gives_uncategorized(
    configure: Configure, classify: Classify, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules]\nInvalidRecipient = ['^550 5\\.1\\.1 ']\n")
    configure(files=[str(rules)])
    assert classify("451 4.4.1 no answer") == "Uncategorized"


def test_first_rule_wins_across_files_in_file_order(
    configure: Configure, classify: Classify, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text("[rules]\nCustomA = ['mailbox']\n")
    second.write_text("[rules]\nInvalidRecipient = ['^550 ']\nCustomB = ['full']\n")
    configure(files=[str(first), str(second)])
    assert classify("550 5.2.2 mailbox full") == "CustomA"
    assert classify("552 5.2.2 quota full") == "CustomB"
    configure(files=[str(second), str(first)])
    assert classify("550 5.2.2 mailbox full") == "InvalidRecipient"


def test_within_a_file_key_order_then_list_order_decides(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        "[rules]\n"
        "SpamBlock = ['spamhaus', 'blocked']\n"
        "PolicyRelated = ['policy', 'blocked']\n"
        "InvalidRecipient = ['unknown']\n"
    )
    classifier = BounceClassifier(load_rules(path))
    assert classifier.classify("554 blocked by policy") == "SpamBlock"
    assert classifier.classify("554 policy: user unknown") == "PolicyRelated"
    rule = classifier.matching_rule("554 policy: user unknown")
    assert rule == Rule("PolicyRelated", "policy", str(path), 3)


def test_own_rules_listed_first_override_the_defaults(
    configure: Configure, classify: Classify, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("[rules]\nMailboxMoved = ['(?i)mailbox has moved']\n")
    configure(files=[str(mine), default_rules_path()])
    assert classify("550 5.1.6 Mailbox has moved to example.org") == "MailboxMoved"
    assert classify("550 5.1.1 user unknown") == "InvalidRecipient"


def test_json_rules_file_is_accepted(
    configure: Configure, classify: Classify, tmp_path: Path
) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            {
                "rules": {
                    "QuotaIssues": ["(?i)mailbox full", "^552 "],
                    "InvalidRecipient": ["^550 5\\.1\\.1 "],
                }
            }
        )
    )
    configure(files=[str(path)])
    assert classify("552 5.2.2 Mailbox Full") == "QuotaIssues"
    assert classify("550 5.1.1 nobody here") == "InvalidRecipient"


def test_default_rules_path_points_at_packaged_toml() -> None:
    path = Path(default_rules_path())
    assert path.name == "default.toml" and path.is_file()
    assert len(load_rules(path)) > 100


def test_classifications_are_cached_and_uncategorized_has_its_own_cache(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[rules]\nInvalidRecipient = ['unknown']\n")
    classifier = BounceClassifier(load_rules(path), cache_size=2, uncategorized_cache_size=1)
    for text in ("550 unknown a", "550 unknown b", "550 unknown c", "550 x", "550 y"):
        classifier.classify(text)
    assert len(classifier._cache) == 2 and len(classifier._uncategorized) == 1
    # The least recently used entry went first; a flood of Uncategorized evicted nothing.
    assert classifier._cache.get("550 unknown a") is None
    assert classifier._cache.get("550 unknown c") == "InvalidRecipient"


def test_cache_hit_does_not_search_again(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[rules]\nInvalidRecipient = ['unknown']\n")
    classifier = BounceClassifier(load_rules(path))
    assert classifier.classify("550 user unknown") == "InvalidRecipient"
    classifier._searches = []  # any search now would find nothing
    assert classifier.classify("550 user unknown") == "InvalidRecipient"


def test_each_plugin_manager_has_its_own_classifier(tmp_path: Path) -> None:
    import asyncio

    import pluggy
    from kumocore_bounce_classifier import BounceClassifierPlugin

    import kumocore.hookspecs
    from kumocore.policy.hooks import Hooks
    from tests.plugins.bounce_classifier.conftest import response

    managers = []
    for _ in range(2):
        manager = pluggy.PluginManager("kumocore")
        manager.add_hookspecs(kumocore.hookspecs)
        plugin = BounceClassifierPlugin()
        manager.register(plugin)
        managers.append((Hooks(manager), plugin))
    managers[0][1].configure(files=[default_rules_path()])
    first, second = (
        asyncio.run(hooks.classify_bounce(response("550 5.1.1 x"))) for hooks, _ in managers
    )
    assert (first, second) == ("InvalidRecipient", "Uncategorized")
