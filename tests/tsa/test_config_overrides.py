"""The options automation's config actions set for one path (kumocore.tsa.apply): found
through an index of the last sync's actions by source and site or domain, later actions
winning, whatever else is active."""

from __future__ import annotations

import time
from typing import Any

from kumocore.tsa.apply import Applier
from kumocore.tsa.store import ActiveAction


def _set(n: int, kind: str, *, since: float, value: Any, source: str = "pool1",
         site: str = "mx.x.test", domain: str = "x.test", expires: float = 60,
         name: str = "connection_limit") -> ActiveAction:  # fmt: skip
    return ActiveAction(id=f"a{n}", kind=kind, rule="r", reason="why", site=f"src->{site}",
                        site_name=site, source=source, domain=domain, since=since,
                        expires=time.time() + expires, name=name, value=value)  # fmt: skip


async def test_a_paths_overrides_are_its_own_actions_oldest_first_among_thousands() -> None:
    now = time.time()
    others = [_set(n, "SetConfig", since=now - 50, value=n, site=f"mx{n}.other.test",
                   domain=f"other{n}.test") for n in range(20_000)]  # fmt: skip
    mine = [
        _set(1_000_001, "SetDomainConfig", since=now - 30, value=2),
        _set(1_000_002, "SetConfig", since=now - 20, value=3),  # newer: wins
        _set(1_000_003, "SetConfig", since=now - 10, value="1/s", name="max_message_rate"),
        _set(1_000_004, "SetConfig", since=now - 5, value=9, expires=-1),  # ended
        _set(1_000_005, "SetConfig", since=now - 1, value=7, source="pool2"),
        _set(1_000_006, "Suspend", since=now - 1, value=None, name=""),
    ]
    applier = Applier(hooks=None)  # type: ignore[arg-type]  # no queues: only indexing
    await applier.apply({}, {a.id: a for a in [*others, *mine]})
    assert applier.overrides_for("X.Test", "pool1", "mx.x.test") == {
        "connection_limit": 3, "max_message_rate": "1/s"}  # fmt: skip
    assert applier.overrides_for("x.test", "pool2", "mx.x.test") == {"connection_limit": 7}
    assert applier.overrides_for("x.test", "pool1", "mx.elsewhere.test") == {
        "connection_limit": 2}  # the domain's action alone
    assert applier.overrides_for("other7.test", "pool1", "mx7.other.test") == {
        "connection_limit": 7}
    await applier.apply({}, {})
    assert applier.overrides_for("x.test", "pool1", "mx.x.test") == {}
