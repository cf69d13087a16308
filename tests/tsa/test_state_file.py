"""``kumocore tsa serve --state-file``: the local store's actions and match times saved and
read back; what has expired stays out, and a damaged file never stops automation."""

from __future__ import annotations

import time
from pathlib import Path

from kumocore.tsa.state_file import load_state, save_state
from kumocore.tsa.store import ActiveAction, LocalActionStore


def _action(action_id: str, expires: float) -> ActiveAction:
    return ActiveAction(id=action_id, kind="Suspend", rule="rules.toml: x", reason="TS04",
                        site="src->mx@smtp_client", site_name="mx", source="src",
                        domain="x.test", since=time.time(), expires=expires)  # fmt: skip


async def test_saved_actions_and_matches_come_back_and_expired_ones_do_not(
    tmp_path: Path,
) -> None:
    store = LocalActionStore()
    await store.put(_action("live", time.time() + 600))
    await store.put(_action("over", time.time() + 600))
    await store.count_match("rule:site", 3600, time.time())
    store._actions["over"].expires = time.time() - 1  # lapsed before the save
    path = tmp_path / "state" / "tsa.json"
    save_state(path, store)
    restored = LocalActionStore()
    assert load_state(path, restored) == 1
    assert list(await restored.active()) == ["live"]
    assert await restored.count_match("rule:site", 3600, time.time()) == 2


def test_a_missing_or_damaged_state_file_starts_empty(tmp_path: Path) -> None:
    store = LocalActionStore()
    assert load_state(tmp_path / "absent.json", store) == 0
    damaged = tmp_path / "damaged.json"
    damaged.write_bytes(b'{"actions": [{"id": ')
    assert load_state(damaged, store) == 0
    damaged.write_bytes(b'{"actions": [{"no": "fields"}]}')
    assert load_state(damaged, store) == 0


def test_a_state_file_that_is_not_kumocores_is_kept_aside_not_overwritten(
    tmp_path: Path,
) -> None:
    # KumoMTA's tsa-daemon writes MessagePack at the same PATH.state.
    path = tmp_path / "tsa.db.state"
    foreign = b"\x85\xadevent_history\x80\xb0config_overrides\x80"
    path.write_bytes(foreign)
    store = LocalActionStore()
    assert load_state(path, store) == 0
    assert (tmp_path / "tsa.db.state.unreadable").read_bytes() == foreign
    save_state(path, store)
    assert (tmp_path / "tsa.db.state.unreadable").read_bytes() == foreign
    assert load_state(path, LocalActionStore()) == 0  # the new file is kumocore's
    assert not path.with_name("tsa.db.state.unreadable.unreadable").exists()
