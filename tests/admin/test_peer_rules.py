"""The whole-rule entries workers of ``serve --workers N`` pass to a restarted worker
(:mod:`kumocore.admin.peer_rules`): they rebuild the rule field for field, refuse anything
else, and are not served on the public HTTP listener."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kumocore.admin.peer_rules import rule_entry, rule_of_entry
from kumocore.queue.admin import QueueRule
from kumocore.testing.plugin import MakeNode


def test_an_entry_rebuilds_the_rule_with_every_field_but_its_bounce_counts() -> None:
    rule = QueueRule(reason="r", expires=time.time() + 90.123456, duration=90.123456,
                     campaign="c", tenant="t", domain="d.test", routing_domain="rd.test",
                     queue_names=("q1", "q2"), suppress_logging=True,
                     bounced={"q1": 3})  # fmt: skip
    rebuilt = rule_of_entry(rule_entry(rule))
    assert rebuilt is not None
    assert rebuilt.bounced == {}  # counted by the worker that bounced them, not again here
    rebuilt.bounced = rule.bounced
    assert rebuilt == rule


def _entry(**changes: Any) -> dict[str, Any]:
    entry = rule_entry(QueueRule(reason="r", expires=time.time() + 60, duration=60.0))
    entry.update(changes)
    return entry


@pytest.mark.parametrize("entry", [
    None, [], _entry(id=""), _entry(reason=None), _entry(expires="soon"), _entry(duration=True),
    _entry(queue_names="q"), _entry(queue_names=[1]), _entry(suppress_logging="no"),
    _entry(domain=7),
])  # fmt: skip
def test_an_entry_that_is_not_a_whole_rule_is_refused(entry: object) -> None:
    assert rule_of_entry(entry) is None


@pytest.mark.parametrize("kind", ["bounce", "suspend"])
async def test_the_whole_rule_listing_is_not_served_on_the_public_listener(
    make_node: MakeNode, kind: str
) -> None:
    node = await make_node(sink=False)
    status, _ = await node.admin("GET", f"/kumocore/peer/rules/{kind}")
    assert status == 404
