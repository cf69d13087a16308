"""Full disks (issue 14, findings 8 and 17), on a real small tmpfs.

* The spool disk under ``min_free_space``: reception is refused with a 4xx and liveness
  answers 503 before the disk is full; both recover by themselves once space is freed.
* The spool disk filled for real (RocksDB fails its WAL write): reception recovers once
  space is freed, without a restart.
* The log disk full: delivered messages stay spooled until their records are written;
  once space is freed every record appears and the spool empties.

And finding 18: spool, RocksDB and log files are owner-only; a spool directory another
user controls refuses the start.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.world import free_port
from bench.reliability.abuse import wait_until
from bench.reliability.crash import KumoServer, World
from bench.reliability.disk_fill import TmpfsUnavailable, fill, liveness, send, tmpfs, unfill
from kumocore.logs.reader import iter_records
from tests.reliability.conftest import StartKumo, unique

OnTmpfs = Callable[..., KumoServer]


@pytest.fixture
def on_tmpfs(start_kumo: StartKumo) -> Iterator[OnTmpfs]:
    """``on_tmpfs("spool", "8m", **spec)``: a server whose ``var/<where>`` is a tmpfs."""
    with contextlib.ExitStack() as stack:

        def start(where: str, size: str = "8m", **options: Any) -> KumoServer:
            server = start_kumo(ready=False, **options)
            try:
                stack.enter_context(tmpfs(server.var / where, size))
            except TmpfsUnavailable as exc:
                pytest.skip(f"needs a real small filesystem and may not mount one: {exc}")
            stack.callback(server.kill)  # before the unmount (callbacks run in reverse)
            return server.start()

        yield start


def test_spool_under_min_free_space_refuses_4xx_liveness_503_and_recovers(
    on_tmpfs: OnTmpfs, world: World
) -> None:
    http = free_port()
    server = on_tmpfs("spool", http_port=http, spool={"min_free_space": "25%"})
    spool = server.var / "spool"
    assert send(server.port, f"ok.{unique('sp')}@crash.test").code == 250
    assert liveness(http) == (200, "OK")
    fill(spool, leave=1024 * 1024)  # 1 MiB free of 8: under 25 %, far from full
    assert wait_until(lambda: liveness(http)[0] == 503, 10)
    assert liveness(http) == (503, "storage is too full")
    reply = send(server.port, f"ok.{unique('sp')}@crash.test")
    assert reply.code == 421 and reply.text.startswith("4.3.1 insufficient system storage")
    unfill(spool)
    assert wait_until(lambda: liveness(http)[0] == 200, 10)
    rcpt = f"ok.{unique('sp')}@crash.test"
    assert send(server.port, rcpt).code == 250
    assert wait_until(lambda: world.sink.recipients()[rcpt] == 1, 15)


def test_spool_disk_that_filled_for_real_recovers_once_space_is_freed(
    on_tmpfs: OnTmpfs, world: World
) -> None:
    # No floor: nothing refuses early, RocksDB's own WAL write fails with ENOSPC.
    server = on_tmpfs("spool", spool={"min_free_space": 0, "min_free_inodes": 0})
    spool = server.var / "spool"
    fill(spool, leave=1024 * 1024)
    codes = [send(server.port, f"big.{unique('full')}@crash.test", 200_000).code
             for _ in range(12)]
    assert 250 in codes and codes[-1] != 250, codes  # the disk did fill up
    assert set(codes) <= {250, 421, 451}, codes
    unfill(spool)
    rcpt = f"ok.{unique('full')}@crash.test"
    assert wait_until(lambda: send(server.port, rcpt).code == 250, 15, 0.5)
    assert wait_until(lambda: world.sink.recipients()[rcpt] == 1, 15)


def test_full_log_disk_keeps_messages_spooled_until_every_record_is_written(
    on_tmpfs: OnTmpfs, world: World
) -> None:
    server = on_tmpfs("logs", size="2m")
    logs = server.var / "logs"
    fill(logs, leave=0)
    recipients = [f"ok.{n}.{unique('ld')}@crash.test" for n in range(3)]
    for rcpt in recipients:
        assert send(server.port, rcpt).code == 250
    assert wait_until(lambda: not world.sink.undelivered(recipients), 15)
    assert wait_until(lambda: len(server.spooled_ids()) == 3, 5)  # delivered, not logged
    unfill(logs)
    assert wait_until(lambda: not server.spooled_ids(), 20)
    seen: dict[str, set[str]] = {r: set() for r in recipients}
    for record in iter_records(logs):
        if record.get("recipient") in seen:
            seen[record["recipient"]].add(record["type"])
    assert all({"Reception", "Delivery"} <= kinds for kinds in seen.values()), seen


# ---------------------------------------------------------------------------- finding 18


def group_or_other_bits(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) that group or others may access."""
    loose = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            loose.append(f"{path} {stat.S_IMODE(mode):04o}")
    return loose


def test_serve_keeps_spool_rocksdb_and_log_files_owner_only(
    start_kumo: StartKumo, world: World
) -> None:
    server = start_kumo()
    rcpt = f"ok.{unique('mode')}@crash.test"
    assert send(server.port, rcpt).code == 250
    assert wait_until(lambda: world.sink.recipients()[rcpt] == 1, 15)
    assert wait_until(lambda: any((server.var / "logs").iterdir()), 5)
    spool, logs = server.var / "spool", server.var / "logs"
    assert any(p.name.startswith("MANIFEST") for p in (spool / "data").iterdir())  # RocksDB's
    assert group_or_other_bits(spool) == [] and group_or_other_bits(logs) == []
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700


@pytest.mark.parametrize("attack", ["owned by another user", "group-writable"])
def test_serve_refuses_a_spool_directory_someone_else_controls(
    start_kumo: StartKumo, attack: str
) -> None:
    server = start_kumo(ready=False)
    data = server.var / "spool" / "data"
    data.mkdir(parents=True)
    if attack == "owned by another user":
        os.chown(data, 65534, 65534)  # nobody
    else:
        data.chmod(0o770)
    process = server.spawn()
    assert process.wait(timeout=60) == 2
    errors = [line for line in server.log_text().splitlines() if "kumocore: error" in line]
    assert len(errors) == 1, server.log_tail()
    assert str(data) in errors[0] and "spool 'data': refusing" in errors[0]


def test_min_free_inodes_floor_is_checked_on_a_real_filesystem(tmp_path: Path) -> None:
    from kumocore.config.spool import MinFree
    from kumocore.spool.storage_guard import MonitoredPath, StorageMonitor

    try:
        mount = tmpfs(tmp_path / "fs", "8m,nr_inodes=64")
        root = mount.__enter__()
    except TmpfsUnavailable as exc:
        pytest.skip(f"needs a real small filesystem and may not mount one: {exc}")
    try:
        monitor = StorageMonitor([MonitoredPath("meta", root / "spool", MinFree.parse("0"),
                                                MinFree.parse("25%"))])
        assert monitor.check() and monitor.refusal() is None
        for n in range(60):  # use up the inodes, not the space
            (root / f"f{n}").touch()
            if not monitor.check():
                break
        assert monitor.over_limit and "inodes free, under min_free_inodes 25%" in (
            monitor.reasons[0])
        refusal = monitor.refusal()
        assert refusal is not None and refusal.code == 421
        for path in root.glob("f*"):
            path.unlink()
        assert monitor.check() and not monitor.over_limit  # recovers by itself
    finally:
        mount.__exit__(None, None, None)
