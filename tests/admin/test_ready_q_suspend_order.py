"""Which of two suspensions of one ready queue holds it, whatever order a worker applies
them in (:mod:`kumocore.queue.ready_suspend`): the later one by its time-ordered id, as
KumoMTA's last-writer-wins registry, and the replaced one never comes back."""

from __future__ import annotations

import time
import uuid

from kumocore.queue.ready_suspend import (
    ReadyQueueSuspension,
    ReadySuspensions,
    new_suspension_id,
    suspension_order,
)

NAME = "unspecified->mx.dest.test@smtp_client"


def made(reason: str, seconds: float = 3600.0, **fields: str) -> ReadyQueueSuspension:
    return ReadyQueueSuspension(name=NAME, reason=reason, expires=time.time() + seconds, **fields)


def test_ids_are_uuid7_and_increase_even_within_one_millisecond() -> None:
    ids = [new_suspension_id() for _ in range(2000)]  # far more than one per millisecond
    parsed = [uuid.UUID(i) for i in ids]
    assert all(p.version == 7 and p.variant == uuid.RFC_4122 for p in parsed)
    assert [p.int for p in parsed] == sorted({p.int for p in parsed})  # strictly increasing
    # The first 48 bits are the unix time in milliseconds.
    assert abs((parsed[-1].int >> 80) - time.time() * 1000) < 5000


def test_the_later_suspension_holds_in_either_order_of_arrival() -> None:
    earlier, later = made("earlier"), made("later")
    for order in ((earlier, later), (later, earlier)):
        holds = ReadySuspensions()
        results = [holds.add(s) for s in order]
        assert holds.get(NAME) is later
        assert results == ([True, True] if order[0] is earlier else [True, False])
        assert [s.id for s in holds.list()] == [later.id]
        assert holds.replaced(earlier.id) and not holds.replaced(later.id)


def test_a_replaced_suspension_cannot_come_back_or_be_cancelled() -> None:
    holds = ReadySuspensions()
    earlier, later = made("earlier"), made("later", seconds=60)
    holds.add(earlier)
    holds.add(later)
    assert holds.cancel(earlier.id) is None
    assert holds.cancel(later.id) is later  # the queue is free now...
    assert holds.add(earlier) is False  # ...and the replaced one does not hold it again
    assert holds.get(NAME) is None and earlier.id in holds


def test_adding_the_holding_suspension_again_changes_nothing() -> None:
    holds = ReadySuspensions()
    suspension = made("once")
    assert holds.add(suspension) and holds.add(suspension)
    assert holds.get(NAME) is suspension and not holds.replaced(suspension.id)


def test_an_expired_holder_gives_way_even_to_an_earlier_suspension() -> None:
    holds = ReadySuspensions()
    earlier, later = made("earlier"), made("later", seconds=-1)  # the later one is over
    holds.add(later)
    assert holds.add(earlier) is True
    assert holds.get(NAME) is earlier


def test_ids_of_another_shape_sort_before_time_ordered_ones_the_same_everywhere() -> None:
    v4, text, v7 = str(uuid.uuid4()), "not-a-uuid", new_suspension_id()
    assert suspension_order(v4) < suspension_order(v7)
    assert suspension_order(text) < suspension_order(v7)
    for first, second in ((made("v4", id=v4), made("v7", id=v7)),
                          (made("v7", id=v7), made("v4", id=v4))):  # fmt: skip
        holds = ReadySuspensions()
        holds.add(first)
        holds.add(second)
        held = holds.get(NAME)
        assert held is not None and held.id == v7


def test_replaced_ids_are_forgotten_once_their_suspension_would_have_ended() -> None:
    holds = ReadySuspensions()
    for n in range(50):  # each replaces the one before; each would have ended already
        holds.add(made(f"n{n}", seconds=0.05))
    holds.add(made("last"))
    time.sleep(0.1)
    holds.list()
    assert holds._replaced == {}
