"""What the status page costs the node, in CPU: ``python -m bench.perf.status_cpu``.

Starts ``kumocore serve --workers 2`` (bench/common/status_node.py: two sink sites, one
deferring), then measures the CPU time of the supervisor and its workers from
``/proc/<pid>/stat`` over 30 s windows: idle, idle with a headless Chromium on
``/status``, under SMTP load, and under the same load with the browser attached. Prints
one line per window (percent of one core). The loaded windows run without, with, then
without the browser again, so drift in the load shows.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common.status_node import Node, Sinks

WINDOW = float(os.environ.get("STATUS_CPU_WINDOW", "30"))
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _family(root: int) -> list[int]:
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == root:
                pids.append(int(entry.name))
    return pids


def measure(root: int, seconds: float = WINDOW) -> float:
    """Percent of one core used by ``root`` and its children over ``seconds``."""
    pids = _family(root)
    before = sum(_cpu_seconds(p) for p in pids)
    time.sleep(seconds)
    after = sum(_cpu_seconds(p) for p in pids)
    return 100.0 * (after - before) / seconds


class Load:
    """``rate`` messages per second over SMTP, in batches, until stopped."""

    def __init__(self, node: Node, rate: int) -> None:
        self.node, self.rate, self.sent = node, rate, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            # Deliverable mail only: a growing backlog of retries would make the later
            # windows busier than the earlier ones whatever the page does.
            batch = [f"u{self.sent + i}@ok.test" for i in range(self.rate)]
            self.node.send(batch)
            self.sent += len(batch)
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _browser(url: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='kumocore-chromium-')}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.get(url)
    return driver


def main() -> int:
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    sinks = Sinks().start()
    node = Node(Path(tempfile.mkdtemp(prefix="kumocore-status-cpu-")), sinks.port,
                sinks.dns.address)  # fmt: skip
    try:
        node.wait_ready()
        time.sleep(3)
        pid = node.pid
        print(f"idle, no browser:          {measure(pid):5.2f} % of a core", flush=True)
        browser = _browser(node.url + "/status")
        try:
            print(f"idle, browser attached:    {measure(pid):5.2f} % of a core", flush=True)
        finally:
            browser.quit()
        node.send([f"tempfail{i}@defer.test" for i in range(20)])  # a few responses to show
        with Load(node, rate) as load:
            time.sleep(3)
            print(f"{rate} msg/s, no browser:     {measure(pid):5.2f} % of a core", flush=True)
            browser = _browser(node.url + "/status")
            try:
                print(f"{rate} msg/s, browser:        {measure(pid):5.2f} % of a core",
                      flush=True)  # fmt: skip
            finally:
                browser.quit()
            print(f"{rate} msg/s, no browser:     {measure(pid):5.2f} % of a core", flush=True)
        print(f"sent {load.sent} messages; delivered {sum(sinks.delivered().values())}")
    finally:
        node.stop()
        sinks.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
