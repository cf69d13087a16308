"""A ``250`` after DATA is written to the client only once both spools' syncs returned.

A real ``kumocore serve`` process runs under ``strace -f``: the trace orders, across all
threads, the sync system calls on the spool files (RocksDB's ``flush_wal(sync=True)`` is an
``fdatasync``/``fsync`` of the WAL; LocalDisk fsyncs the message file, then its directory)
and the replies the listener writes to its sockets. Between the ``354`` and the ``250 OK
ids=...`` each spool (``data`` and ``meta``; an LMDB ``data`` spool fdatasyncs its
``data.mdb``) must have completed a sync, no spool sync may be
in flight when the ``250`` is written, and none may start after it (a put that returned
before its last sync, e.g. LocalDisk's directory fsync, would show up there).
"""

from __future__ import annotations

import re
import smtplib
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.common.server import KumoServer
from bench.common.server_policy import ServerSpec
from bench.common.world import CRASH_DOMAIN, World

SYNC_CALLS = ("fsync", "fdatasync", "sync_file_range")
_LINE = re.compile(r"^(\d+)\s+[\d.]+\s+(.*)$")
_SYNC_PATH = re.compile(r"^\w+\(\d+<([^>]*)>")
_REPLY = re.compile(r'^(?:write|sendto|sendmsg|writev)\(\d+<(?:TCP|socket)[^>]*>.*?"(\d{3})[ -]')


@dataclass(frozen=True)
class Sync:
    path: str
    start: int  # index of the trace line where the call began
    end: int  # index of the line where it returned


@dataclass(frozen=True)
class Trace:
    syncs: list[Sync]
    replies: list[tuple[str, int, str]]  # (code, line index, the line)


def parse_trace(text: str) -> Trace:
    """Sync calls (with the file they synced) and SMTP replies, in the trace's order."""
    pending: dict[str, tuple[str, int]] = {}  # thread -> (path, start) of an unfinished sync
    syncs: list[Sync] = []
    replies: list[tuple[str, int, str]] = []
    for index, line in enumerate(text.splitlines()):
        match = _LINE.match(line)
        if match is None:
            continue
        thread, call = match.groups()
        if call.startswith("<... "):
            if call.split()[1] in SYNC_CALLS and thread in pending:
                path, start = pending.pop(thread)
                syncs.append(Sync(path, start, index))
            continue
        if call.split("(", 1)[0] in SYNC_CALLS:
            found = _SYNC_PATH.match(call)
            path = found.group(1) if found else ""
            if call.endswith("<unfinished ...>"):
                pending[thread] = (path, index)
            else:
                syncs.append(Sync(path, index, index))
        elif reply := _REPLY.match(call):
            replies.append((reply.group(1), index, call))
    return Trace(syncs, replies)


def ordering_problems(trace: Trace, spools: dict[str, str]) -> list[str]:
    """What breaks "synced before 250" for the first message; ``spools`` maps name -> dir."""
    codes = [(code, index, call) for code, index, call in trace.replies]
    start_data = next((i for code, i, _ in codes if code == "354"), None)
    if start_data is None:
        return ["no 354 reply in the trace"]
    accepted = next((i for code, i, call in codes
                     if code == "250" and i > start_data and "OK ids=" in call), None)
    if accepted is None:
        return ["no 250 OK ids=... after the 354 in the trace"]
    closing = next((i for code, i, _ in codes if code == "221" and i > accepted), None)
    problems = []
    for name, directory in spools.items():
        own = [s for s in trace.syncs if s.path.startswith(directory + "/")
               or s.path == directory]
        if not any(start_data < s.end < accepted for s in own):
            problems.append(f"spool {name}: no sync returned between the 354 and the 250")
        for sync in own:
            if sync.start < accepted < sync.end:
                problems.append(f"spool {name}: 250 written while {sync.path} was syncing")
            if closing is not None and accepted < sync.start < closing:
                problems.append(f"spool {name}: {sync.path} synced after the 250")
    return problems


class StracedServer(KumoServer):
    """``kumocore serve`` under ``strace -f``: syncs and socket writes, with file names."""

    def __init__(self, spec: ServerSpec, workdir: Path) -> None:
        super().__init__(spec, workdir)
        self.trace_path = self.workdir / "strace.txt"

    def command(self) -> list[str]:
        calls = ",".join((*SYNC_CALLS, "write", "writev", "sendto", "sendmsg"))
        return ["strace", "-f", "--seccomp-bpf", "-ttt", "-y", "-s", "48",
                "-e", f"trace={calls}", "-o", str(self.trace_path), *super().command()]


def send_one(port: int, recipient: str) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("sync-order.test")
        client.mail("sender@sync-order.test")
        client.rcpt(recipient)
        code, text = client.data(b"Subject: sync order\r\n\r\nbody\r\n")
        assert code == 250, (code, text)
        return text.decode()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "data_kind", "meta_dir"),
                         [("RocksDB", None, "meta"), ("LocalDisk", None, "meta"),
                          ("RocksDB", "LMDB", "meta"), ("LMDB", "LMDB", "data")])
def test_250_is_written_only_after_both_spools_synced(
    kind: str, data_kind: str | None, meta_dir: str, world: World, tmp_path: Path
) -> None:
    """``("LMDB", "LMDB", "data")``: both spools in one environment, one transaction."""
    spec = ServerSpec(dns=world.dns.address, sink_port=world.sink.port, spool_kind=kind,
                      data_kind=data_kind, meta_dir=meta_dir)
    server = StracedServer(spec, tmp_path)
    server.start(timeout=120)
    try:
        reply = send_one(server.port, f"sync.{kind.lower()}@{CRASH_DOMAIN}")
        deadline = time.monotonic() + 30
        while "221" not in _replied(server.trace_path) and time.monotonic() < deadline:
            time.sleep(0.1)  # strace writes its lines as they happen
    finally:
        server.terminate(timeout=30)
    trace = parse_trace(server.trace_path.read_text(errors="replace"))
    spools = {name: str(server.var / "spool" / directory)
              for name, directory in (("data", "data"), ("meta", meta_dir))}
    assert "OK ids=" in reply
    assert ordering_problems(trace, spools) == []


def _replied(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return " ".join(code for code, _, _ in parse_trace(text).replies)


# -------------------------------------------------- the check itself, on written traces

_GOOD = """\
10 1.0 sendto(7<TCP:[1]>, "354 End data with <CR><LF>.<CR><LF>\\r\\n", 38, 0, NULL, 0) = 38
11 1.1 fdatasync(9</v/spool/data/000004.log> <unfinished ...>
12 1.1 fdatasync(10</v/spool/meta/000004.log> <unfinished ...>
11 1.2 <... fdatasync resumed>) = 0
12 1.3 <... fdatasync resumed>) = 0
10 1.4 sendto(7<TCP:[1]>, "250 OK ids=0123\\r\\n", 17, 0, NULL, 0) = 17
10 1.5 sendto(7<TCP:[1]>, "221 Bye\\r\\n", 9, 0, NULL, 0) = 9
"""
SPOOLS = {"data": "/v/spool/data", "meta": "/v/spool/meta"}


def test_the_order_check_passes_a_trace_with_both_syncs_before_the_250() -> None:
    assert ordering_problems(parse_trace(_GOOD), SPOOLS) == []


def test_the_order_check_fails_a_250_written_while_a_sync_is_on_disk() -> None:
    lines = _GOOD.splitlines()
    early = "\n".join([*lines[:4], lines[5], lines[4], lines[6]])  # meta returns after 250
    assert ordering_problems(parse_trace(early), SPOOLS) == [
        "spool meta: no sync returned between the 354 and the 250",
        "spool meta: 250 written while /v/spool/meta/000004.log was syncing",
    ]


def test_the_order_check_fails_a_sync_that_starts_after_the_250() -> None:
    late = _GOOD.replace(
        '10 1.5 sendto', '13 1.45 fsync(11</v/spool/data/ab>) = 0\n10 1.5 sendto')
    assert ordering_problems(parse_trace(late), SPOOLS) == [
        "spool data: /v/spool/data/ab synced after the 250"]


def test_the_order_check_fails_a_250_without_any_sync() -> None:
    bare = "\n".join(line for line in _GOOD.splitlines() if "sync" not in line)
    assert len(ordering_problems(parse_trace(bare), SPOOLS)) == 2
