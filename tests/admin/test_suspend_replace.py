"""A second scheduled-queue suspension (``/api/admin/suspend/v1``) with the same selectors
replaces the first, as KumoMTA's does: one listed, with the new id, reason and end; the
replaced id is gone (cancelling it is a 404). Suspensions with other selectors, and
automation's, are left alone."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kumocore.queue.admin import AdminRules, QueueRule, parse_rule

SUSPEND = "/api/admin/suspend/v1"


async def test_a_second_suspension_with_the_same_selectors_replaces_the_first(
    client: Any,
) -> None:
    selectors = {"domain": "example.com", "tenant": "t1"}
    first = await client.post(SUSPEND, json={**selectors, "reason": "first", "duration": "1h"})
    second = await client.post(SUSPEND, json={**selectors, "reason": "2nd", "duration": "2h"})
    first_id, second_id = (await first.json())["id"], (await second.json())["id"]
    assert first_id != second_id
    listed = await (await client.get(SUSPEND)).json()
    assert [(s["id"], s["reason"]) for s in listed] == [(second_id, "2nd")]
    assert 7100 <= float(listed[0]["duration"].removesuffix("s")) <= 7200  # the new end
    gone = await client.delete(SUSPEND, json={"id": first_id})
    assert gone.status == 404 and "error" in await gone.json()
    assert (await client.delete(SUSPEND, json={"id": second_id})).status == 200
    assert await (await client.get(SUSPEND)).json() == []


async def test_suspensions_with_other_selectors_stay_side_by_side(client: Any) -> None:
    bodies = [
        {"domain": "example.com"},
        {"domain": "example.com", "tenant": "t1"},
        {"domain": "example.com", "tenant": "t1", "campaign": "c1"},
        {"tenant": "t1"},
    ]
    made = []
    for body in bodies:
        response = await client.post(SUSPEND, json={**body, "reason": "r", "duration": "1h"})
        made.append((await response.json())["id"])
    listed = await (await client.get(SUSPEND)).json()
    assert sorted(s["id"] for s in listed) == sorted(made)


def _rule(reason: str, **fields: Any) -> QueueRule:
    return parse_rule({"domain": "example.com", "reason": reason, "duration": "1h", **fields})


def test_the_earlier_suspension_arriving_last_does_not_replace_the_later_one() -> None:
    # Two workers each apply both, in opposite orders: both keep the later one.
    earlier, later = _rule("earlier"), _rule("later")
    for order in ((earlier, later), (later, earlier)):
        rules = AdminRules()
        for rule in order:
            rules.add_suspension(rule)
        assert [r.id for r in rules.list_suspensions()] == [later.id]


def test_a_replaced_suspension_does_not_come_back_after_the_later_one_is_cancelled() -> None:
    rules = AdminRules()
    earlier, later = _rule("earlier"), _rule("later")
    assert rules.add_suspension(earlier) and rules.add_suspension(later)
    del rules.suspensions[later.id]  # cancelled
    assert rules.add_suspension(earlier) is False  # passed on late by a peer
    assert rules.suspension_for("example.com") is None


def test_an_expired_suspension_is_not_a_reason_to_refuse_an_earlier_one() -> None:
    rules = AdminRules()
    earlier, later = _rule("earlier"), _rule("later")
    later.expires = time.time() - 1
    rules.suspensions[later.id] = later
    assert rules.add_suspension(earlier) is True


@pytest.mark.parametrize("fields", [{"queue_names": ["example.com"]}, {"routing_domain": "r"}])
def test_queue_names_and_routing_domain_are_selectors_too(fields: dict[str, Any]) -> None:
    rules = AdminRules()
    plain, other = _rule("plain"), _rule("other", **fields)
    rules.add_suspension(plain)
    rules.add_suspension(other)
    assert {r.id for r in rules.list_suspensions()} == {plain.id, other.id}


def test_automation_suspensions_are_not_replaced_by_an_operator_one() -> None:
    rules = AdminRules()
    automation = QueueRule(reason="tsa", expires=time.time() + 60, duration=60,
                           domain="example.com", id="example.com-" + "ab" * 32)  # fmt: skip
    operator = _rule("operator")
    rules.add_suspension(automation)
    rules.add_suspension(operator)
    assert {r.id for r in rules.list_suspensions()} == {automation.id, operator.id}
