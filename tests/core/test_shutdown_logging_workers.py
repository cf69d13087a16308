"""``shutdown_logging`` under ``kumocore serve --workers 2``: each worker runs it once as
it stops (the supervisor, which loads no policy, does not)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from bench.common.serve_process import ServeProcess

pytestmark = pytest.mark.slow

POLICY = """
import os
from kumocore import hookimpl

# Two million live objects widen the garbage collection each worker runs once it listens:
# a SIGTERM sent on `kumocore ready` used to land there, find the default handler and
# kill the worker without its graceful stop (3 runs in 5 failed; 1 in 3 without these).
BALLAST = [[n] for n in range(2_000_000)]

@hookimpl
def kumo_init(kumo):
    var = os.environ["T_DIR"]
    kumo.define_spool(name="data", path=f"{var}/spool/data", kind="LocalDisk")
    kumo.define_spool(name="meta", path=f"{var}/spool/meta", kind="LocalDisk")
    kumo.start_esmtp_listener(listen=f"127.0.0.1:{os.environ['T_SMTP']}")

@hookimpl
def kumo_shutdown_logging():
    with open(os.path.join(os.environ["T_DIR"], "shutdown_logging"), "a") as out:
        out.write(f"{os.getpid()}\\n")
"""


async def test_each_worker_runs_shutdown_logging_once_even_when_stopped_as_it_starts(
    tmp_path: Path,
) -> None:
    (tmp_path / "policy.py").write_text(POLICY)
    # Short socket paths: tmp_path can exceed what AF_UNIX allows (107 bytes).
    short_tmp = tempfile.mkdtemp(prefix="kc-")
    node = ServeProcess(tmp_path / "policy.py", tmp_path / "kumocore.log",
                        {"T_DIR": str(tmp_path), "TMPDIR": short_tmp}, workers=2,
                        shutdown_timeout=5.0, listen_ports=["T_SMTP"])  # fmt: skip
    process = node.start()
    try:
        await node.wait_for_log("kumocore ready", timeout=60)
        process.send_signal(signal.SIGTERM)  # the supervisor only: it stops its workers
        assert await asyncio.to_thread(process.wait, 30) == 0, node.log_text(3000)
    finally:
        node.kill9()
        shutil.rmtree(short_tmp, ignore_errors=True)
    pids = (tmp_path / "shutdown_logging").read_text().split()
    assert len(pids) == 2 and len(set(pids)) == 2, pids
    assert str(process.pid) not in pids
