"""Local logs under ``kumocore serve --workers N``: tagged names, leftovers by owner."""

from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_local_logs import LocalLogsPlugin
from kumocore_local_logs.segment import segment_name
from kumocore_local_logs.workers import WorkerTag

from kumocore.logs.reader import is_done, iter_records
from tests.core.logs.fakes import record

NS = 1_757_675_281_440_526_026


def leftover(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_bytes(b"")
    path.chmod(0o644)
    return path


def test_worker_tag_comes_from_the_environment_kumocore_sets_for_workers() -> None:
    env = {"KUMOCORE_WORKER_INDEX": "1", "KUMOCORE_WORKER_COUNT": "2"}
    assert WorkerTag.from_env(env) == WorkerTag(1, 2)
    assert WorkerTag.from_env({}) is None
    assert WorkerTag.from_env({**env, "KUMOCORE_WORKER_COUNT": "1"}) is None


def test_a_worker_segment_name_carries_its_index_before_the_suffix() -> None:
    name = segment_name(NS, "_recv", WorkerTag(1, 2))
    assert name == "20250912-110801.440526026.w1_recv"
    assert sorted([name, segment_name(NS + 1, "", WorkerTag(0, 2))])[0] == name  # time order


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("20250912-110801.440526026.w0", 0),
        ("20250912-110801.440526026.w1_recv", 1),
        ("20250912-110801.440526026.w2", 0),  # worker 2 of an earlier run with 3 workers
        ("20250912-110801.440526026.w3", 1),
        ("20250912-110801.440526026", 0),  # written by a single-process run
    ],
)
def test_each_leftover_segment_is_finished_by_exactly_one_worker(name: str, owner: int) -> None:
    owners = [k for k in range(2) if WorkerTag(k, 2).owns_leftover(name)]
    assert owners == [owner]


async def test_a_starting_worker_leaves_another_live_workers_open_segment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_live = leftover(tmp_path, "20250912-110801.440526026.w0")
    own_crashed = leftover(tmp_path, "20250912-110801.440526027.w1")
    monkeypatch.setenv("KUMOCORE_WORKER_INDEX", "1")
    monkeypatch.setenv("KUMOCORE_WORKER_COUNT", "2")
    sink = LocalLogsPlugin().configure(log_dir=str(tmp_path))
    await sink.write_batch([record()])
    assert not is_done(other_live)
    assert is_done(own_crashed)
    written = [p for p in tmp_path.iterdir() if p not in (other_live, own_crashed)]
    assert [p.name.split(".")[-1] for p in written] == ["w1"]
    await sink.close()
    assert len(list(iter_records(tmp_path))) == 1
