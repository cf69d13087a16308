"""``GET /api/admin/tsa/v1`` written a few hundred actions a part (kumocore.tsa.http):
the parts joined are the listing rendered whole, however many parts there are."""

from __future__ import annotations

import time

import orjson
import pytest

from kumocore.tsa.http import _ACTIONS_PER_STEP, _listing_parts
from kumocore.tsa.store import ActiveAction


def _action(n: int) -> ActiveAction:
    now = time.time()
    return ActiveAction(
        id=f"site{n}-hash", kind="SetConfig" if n % 2 else "Suspend", rule="r.toml: x",
        reason="421 [TS04]", site=f"site{n}", site_name=f"mx{n}.x.test", source="src",
        domain="x.test", since=now, expires=now + 60, name="connection_limit" if n % 2
        else None, value={"limit": n} if n % 2 else None)  # fmt: skip


@pytest.mark.parametrize("count", [0, 1, _ACTIONS_PER_STEP, 2 * _ACTIONS_PER_STEP + 1])
def test_the_listing_in_parts_is_the_listing_rendered_whole(count: int) -> None:
    actions = [_action(n) for n in range(count)]
    applied = {a.id for a in actions[::3]}
    head = {"configured": True, "store": "local"}
    parts = list(_listing_parts(head, actions, applied))
    assert len(parts) == 2 + -(-count // _ACTIONS_PER_STEP)
    listing = orjson.loads(b"".join(parts))
    for entry in listing["actions"]:  # the one field the clock moves between the two
        entry.pop("remaining_seconds")
    whole = {**head, "actions": [
        {**a.to_json(), "applied": a.id in applied} for a in actions]}  # fmt: skip
    for entry in whole["actions"]:
        entry.pop("remaining_seconds")
    assert listing == whole
