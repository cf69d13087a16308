"""Admin bounce and suspension rules found through their index
(:mod:`kumocore.queue.admin_index`) give the answers a test of every rule gave
(:class:`tests.queue.admin_scan.ScanRules`): the same winner when several match, the same
lapsed rules dropped, the same order; and a lookup tests only a few rules."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from kumocore.mail.queue_name import QueueNameParts, queue_name_for
from kumocore.queue.admin import AdminRules, QueueRule
from kumocore.queue.ready_suspend import new_suspension_id
from tests.queue.admin_scan import ScanRules

DOMAINS = ["a.example", "b.example", "c.example", ""]
TENANTS = ["t1", "t2", "x@evil.com"]
CAMPAIGNS = ["c1", "c2"]
ROUTING = ["r1"]
NAMES = sorted({queue_name_for(d, t, c, r) for d in DOMAINS for t in (None, *TENANTS)
                for c in (None, *CAMPAIGNS) for r in (None, *ROUTING)} | {"odd%zz@a.example"})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``time.time()`` that moves only when a test moves it (rules lapse on cue)."""
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def _rule(expires_in: float = 3600.0, **fields: Any) -> QueueRule:
    return QueueRule(reason="r", expires=time.time() + expires_in, duration=60.0, **fields)


def _random_rule(rng: random.Random, rule_id: str | None = None) -> QueueRule:
    fields: dict[str, Any] = {}
    shape = rng.random()
    if shape < 0.15:
        fields["queue_names"] = (*rng.sample(NAMES, rng.randint(1, 4)), "nowhere.example")
    elif shape > 0.22:  # else no selector at all: matches every queue
        for name, pool in (("domain", DOMAINS), ("tenant", TENANTS),
                           ("campaign", CAMPAIGNS), ("routing_domain", ROUTING)):  # fmt: skip
            if rng.random() < 0.45:
                fields[name] = rng.choice(pool)
    if rule_id is None and rng.random() < 0.1:  # automation's ids are not UUIDs
        rule_id = f"site-{rng.getrandbits(64):016x}"
    if rule_id is not None:
        fields["id"] = rule_id
    return _rule(rng.choice([-5.0, 3.0, 7.0, 12.0, 3600.0]), **fields)


def _assert_same(fast: AdminRules, slow: ScanRules) -> None:
    for name in NAMES:
        assert fast.bounce_rule_for(name) is slow.bounce_rule_for(name), name
        assert fast.suspension_for(name) is slow.suspension_for(name), name
        assert fast.suspended_until(name) == slow.suspended_until(name), name
        assert list(fast.bounces) == list(slow.bounces)  # the same lapsed rules dropped
        assert list(fast.suspensions) == list(slow.suspensions)
    assert fast.list_bounces() == slow.list_bounces()
    assert fast.list_suspensions() == slow.list_suspensions()


def _step(rng: random.Random, fast: AdminRules, slow: ScanRules, clock: list[float],
          made: list[QueueRule]) -> None:  # fmt: skip
    kind = rng.choice(["bounces", "suspensions"])
    mine: dict[str, QueueRule] = getattr(slow, kind)
    theirs = getattr(fast, kind)
    action = rng.random()
    if action < 0.05 and made:  # passed on late by a peer: maybe replaced, maybe earlier
        rule = rng.choice(made)
        assert fast.add_suspension(rule) is slow.add_suspension(rule)
    elif action < 0.35:
        rule = _random_rule(rng)
        made.append(rule)
        if kind == "suspensions" and rng.random() < 0.6:
            assert fast.add_suspension(rule) is slow.add_suspension(rule)
        else:
            mine[rule.id] = theirs[rule.id] = rule
    elif action < 0.5 and mine:  # cancelled
        rule_id = rng.choice(list(mine))
        assert theirs.pop(rule_id, None) is mine.pop(rule_id, None)
    elif action < 0.6 and mine:  # set again under its id: keeps its place
        rule = _random_rule(rng, rng.choice(list(mine)))
        mine[rule.id] = theirs[rule.id] = rule
    elif action < 0.7 and mine:  # deleted and added again: goes last
        rule_id = rng.choice(list(mine))
        rule = mine.pop(rule_id)
        del theirs[rule_id]
        mine[rule_id] = theirs[rule_id] = rule
    elif action < 0.8:
        clock[0] += rng.uniform(0.0, 4.0)
    else:
        _assert_same(fast, slow)


@pytest.mark.parametrize("seed", range(8))
def test_the_index_answers_as_a_scan_of_every_rule_through_adds_cancels_and_lapses(
    seed: int, clock: list[float]
) -> None:
    rng = random.Random(seed)
    fast, slow, made = AdminRules(), ScanRules(), []
    for _ in range(400):
        _step(rng, fast, slow, clock, made)
    _assert_same(fast, slow)


def test_a_varied_set_of_rules_all_active_at_once_gives_the_scans_answers(
    clock: list[float],
) -> None:
    rng = random.Random(99)
    fast, slow = AdminRules(), ScanRules()
    for _ in range(300):
        rule = _random_rule(rng)
        fast.bounces[rule.id] = slow.bounces[rule.id] = rule
        fast.suspensions[rule.id] = slow.suspensions[rule.id] = rule
    _assert_same(fast, slow)
    clock[0] += 5.0  # some lapse
    _assert_same(fast, slow)


def test_of_several_matching_rules_the_first_added_bounces_and_the_last_added_suspends(
    clock: list[float],
) -> None:
    name = queue_name_for("a.example", "t1", "c1")
    rules = [_rule(domain="a.example"), _rule(50.0, tenant="t1"), _rule(),
             _rule(queue_names=(name,)), _rule(campaign="c1", tenant="t1")]  # fmt: skip
    admin = AdminRules()
    for rule in rules:
        admin.bounces[rule.id] = admin.suspensions[rule.id] = rule
    assert admin.bounce_rule_for(name) is rules[0]
    assert admin.suspension_for(name) is rules[-1]
    assert admin.suspended_until(name) == max(r.expires for r in rules)
    clock[0] += 3601.0
    assert admin.suspension_for(name) is None and not admin.suspensions


def test_a_rule_set_again_under_its_id_keeps_its_place_and_one_added_again_goes_last(
    clock: list[float],
) -> None:
    first, second = _rule(domain="a.example"), _rule(tenant="t1")
    admin = AdminRules()
    admin.bounces[first.id] = first
    admin.bounces[second.id] = second
    again = _rule(domain="a.example", id=first.id)
    admin.bounces[first.id] = again
    assert admin.bounce_rule_for("t1@a.example") is again
    admin.bounces.pop(first.id)
    admin.bounces[first.id] = first
    assert admin.bounce_rule_for("t1@a.example") is second
    assert list(admin.bounces) == [second.id, first.id]


def test_a_lapsed_rule_stops_matching_and_leaves_the_index(clock: list[float]) -> None:
    short, long = _rule(10.0, domain="a.example"), _rule(20.0, tenant="t1")
    admin = AdminRules()
    admin.add_suspension(short)
    admin.add_suspension(long)
    clock[0] += 15.0
    assert admin.suspension_for("a.example") is None
    assert short.id not in admin.suspensions  # dropped by the lookup, as the scan did
    assert admin.suspension_for("t1@a.example") is long


def test_a_rule_whose_end_is_moved_after_it_was_added_lapses_at_its_new_end(
    clock: list[float],
) -> None:
    earlier, later = _rule(10.0, domain="a.example"), _rule(10.0, domain="b.example")
    admin = AdminRules()
    admin.bounces[earlier.id], admin.bounces[later.id] = earlier, later
    earlier.expires = clock[0] - 1.0
    later.expires = clock[0] + 60.0
    assert admin.bounce_rule_for("a.example") is None
    assert earlier.id not in admin.bounces
    clock[0] += 30.0  # past the end it was added with
    assert admin.bounce_rule_for("b.example") is later


def test_a_rule_ending_at_nan_is_lapsed_as_the_scan_finds_it(clock: list[float]) -> None:
    rule = _rule(domain="a.example")
    rule.expires = float("nan")
    admin = AdminRules()
    admin.bounces[rule.id] = rule
    assert admin.bounce_rule_for("a.example") is None and not admin.bounces


def test_queue_names_shared_by_rules_or_given_twice_are_unfiled_with_each_rule(
    clock: list[float],
) -> None:
    first = _rule(queue_names=("a.example", "b.example", "a.example"))
    second = _rule(queue_names=("b.example",))
    admin = AdminRules()
    admin.bounces[first.id], admin.bounces[second.id] = first, second
    assert admin.bounce_rule_for("b.example") is first
    del admin.bounces[first.id]
    assert admin.bounce_rule_for("a.example") is None
    assert admin.bounce_rule_for("b.example") is second
    clock[0] += 3601.0
    assert admin.bounce_rule_for("b.example") is None
    assert not any(admin.bounces._buckets.values())  # nothing left filed (no leak)


def test_a_late_suspension_meets_rules_with_its_selectors_in_the_order_they_were_added(
    clock: list[float],
) -> None:
    # Two suspensions with one set of selectors (a peer's, set directly), the later one
    # set again in place: it keeps its first place, so a scan meets it first and refuses
    # the middle one without removing the earliest.
    early, middle, late = (_rule(domain="a.example", id=new_suspension_id()) for _ in range(3))
    fast, slow = AdminRules(), ScanRules()
    for rules in (fast, slow):
        rules.suspensions[late.id] = late
        rules.suspensions[early.id] = early
        rules.suspensions[late.id] = late
    assert fast.add_suspension(middle) is slow.add_suspension(middle) is False
    assert list(fast.suspensions) == list(slow.suspensions) == [late.id, early.id]


@dataclass
class _CountingRule(QueueRule):
    tested: ClassVar[list[int]] = [0]

    def matches_parsed(self, queue_name: str, parts: QueueNameParts) -> bool:
        _CountingRule.tested[0] += 1
        return super().matches_parsed(queue_name, parts)


def test_a_lookup_among_2000_rules_tests_only_those_filed_under_the_queues_parts() -> None:
    admin = AdminRules()
    for n in range(2000):
        by = ["domain", "tenant", "campaign"][n % 3]
        rule = _CountingRule(reason="r", expires=time.time() + 60, duration=60,
                             **{by: f"v{n}.example"})  # fmt: skip
        admin.suspensions[rule.id] = rule
    everything = _CountingRule(reason="all", expires=time.time() + 60, duration=60)
    admin.suspensions[everything.id] = everything
    _CountingRule.tested[0] = 0
    assert admin.suspension_for(queue_name_for("v3.example", "v1.example")) is everything
    assert _CountingRule.tested[0] == 3  # v3's domain rule, v1's tenant rule, the catch-all
    assert admin.suspension_for("nowhere.example") is everything


def test_the_heap_of_ends_stays_bounded_while_long_rules_come_and_go() -> None:
    admin = AdminRules()
    for _ in range(5000):
        rule = _rule(86400.0 * 365, domain="a.example")
        admin.bounces[rule.id] = rule
        del admin.bounces[rule.id]
    assert len(admin.bounces._ends) <= 64  # stale entries compacted away


def test_many_rules_lapsing_together_all_leave_at_the_next_lookup(clock: list[float]) -> None:
    admin = AdminRules()
    lapsing = [_rule(10.0, domain=f"d{n}.example") for n in range(500)]
    staying = [_rule(domain=f"s{n}.example") for n in range(100)]
    for rule in [*lapsing, *staying]:
        admin.bounces[rule.id] = rule
    for _ in range(500):  # cancelled: their entries wait in the heap (it is rebuilt meanwhile)
        gone = _rule(domain="gone.example")
        admin.bounces[gone.id] = gone
        del admin.bounces[gone.id]
    clock[0] += 11.0
    assert admin.bounce_rule_for("s7.example") is staying[7]
    assert list(admin.bounces) == [r.id for r in staying]
