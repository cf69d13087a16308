"""Ready-queue suspensions at their limits: an ``expires`` of
``/api/admin/suspend-ready-q/v1`` must be a time the listing can write back in UTC as RFC
3339 (and another worker can read): one past 9999-12-31 UTC, or before year 1, is refused
with a JSON 400 instead of being listed as ``10000-01-01T...``; and many suspensions
shared by automation cost each sync little."""

from __future__ import annotations

import datetime
import time

import pytest

from kumocore.admin.node_adopt import suspension_of_entry
from kumocore.node.runtime import Runtime
from kumocore.testing.node import SINK_HOST
from kumocore.testing.plugin import MakeNode

PATH = "/api/admin/suspend-ready-q/v1"
READY_Q = f"unspecified->{SINK_HOST}@smtp_client"


@pytest.mark.parametrize("expires", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
async def test_an_expiry_outside_what_utc_can_write_is_refused_and_holds_nothing(
    make_node: MakeNode, expires: str
) -> None:
    node = await make_node(sink=False)
    status, answer = await node.admin(
        "POST", PATH, {"name": READY_Q, "reason": "r", "expires": expires})
    assert status == 400 and "out of range in UTC" in answer["error"], answer
    assert await node.admin("GET", PATH) == (200, [])


async def test_the_latest_expiry_utc_can_write_is_listed_as_rfc_3339(
    make_node: MakeNode,
) -> None:
    node = await make_node(sink=False)
    status, answer = await node.admin(
        "POST", PATH, {"name": READY_Q, "reason": "r", "expires": "9999-12-31T23:59:59Z"})
    assert status == 200, answer
    status, (entry,) = await node.admin("GET", PATH)
    assert entry["expires"] == "9999-12-31T23:59:59.000000000Z"
    # What a restarted worker reads back from that listing is the same suspension.
    adopted = suspension_of_entry(entry)
    assert adopted is not None
    assert (adopted.id, adopted.name, adopted.reason) == (answer["id"], READY_Q, "r")
    assert adopted.expires == datetime.datetime(9999, 12, 31, 23, 59, 59,
                                                tzinfo=datetime.UTC).timestamp()  # fmt: skip


@pytest.mark.parametrize("entry", [
    None, [], {"id": "x", "name": "q", "reason": "r"},
    {"id": "x", "name": "q", "reason": "r", "expires": "soon"},
    {"id": "x", "name": "q", "reason": "r", "expires": "2030-01-01T00:00:00"},  # no zone
    {"id": 7, "name": "q", "reason": "r", "expires": "2030-01-01T00:00:00Z"},
])  # fmt: skip
def test_a_listing_entry_that_is_not_a_suspension_is_not_adopted(entry: object) -> None:
    assert suspension_of_entry(entry) is None


async def test_an_automation_sync_of_many_shared_suspensions_stays_quick(
    runtime: Runtime,
) -> None:
    """Every sync asks, for each shared suspension, whether this worker holds it: that
    must not cost a walk over all of them each time (10 000 took 1.5 s a sync)."""
    from kumocore.tsa.apply import Applier
    from kumocore.tsa.store import ActiveAction

    assert runtime.services is not None
    manager = runtime.services.queues
    applier = Applier(runtime.hooks)
    applier.queues = manager
    now = time.time()
    actions = {f"id{n}": ActiveAction(
        id=f"id{n}", kind="AdminSuspendReadyQ", rule="admin API on elsewhere", reason="r",
        site=f"unspecified->mx{n}.test@smtp_client", site_name="", source="", domain="",
        since=now, expires=now + 600) for n in range(10_000)}  # fmt: skip
    await applier.apply({}, actions)
    assert len(manager.egress.ready_holds.list()) == 10_000
    started = time.perf_counter()
    await applier.apply(actions, actions)  # the next sync: nothing new
    assert time.perf_counter() - started < 0.3
    assert manager.egress.ready_holds.cancel("id9999") is not None
    assert len(manager.egress.ready_holds.list()) == 9999
