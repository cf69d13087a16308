"""kumocore under test: ``kumocore serve`` with ``bench/policy/bench_policy.py``.

:class:`KumocoreInstance` copies the policy into the run's temp dir, generates the DKIM key
there, and starts ``python -m kumocore.node.cli serve`` as a child process whose diagnostics
(JSON lines) go to ``kumocore.log``. The destination domain's MX is served by
:class:`BenchDns`, a real DNS server on loopback (``bench/common/dns_server.py``).

:func:`profile_with_py_spy` samples a running instance with py-spy, and
:func:`top_functions` turns py-spy's collapsed stacks into a "top" table.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common.dns_server import TestDnsServer
from bench.common.serve_process import BLOCKED_PLUGINS
from bench.perf.child import ChildProcess
from bench.perf.load import DEST_DOMAIN, SENDER_DOMAIN, LoadError, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "bench" / "policy" / "bench_policy.py"


def generate_dkim_key(directory: Path) -> tuple[Path, str]:
    """An RSA 2048 key in ``directory``; returns its path and the DNS ``p=`` value."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "dkim-bench.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, base64.b64encode(public).decode()


class BenchDns:
    """The test zones: ``dest.example`` MX → 127.0.0.1, and the DKIM public key."""

    def __init__(self, dkim_public: str = "") -> None:
        zones: dict[str, dict[str, Any]] = {
            DEST_DOMAIN: {"MX": [(10, f"mx.{DEST_DOMAIN}")], "TTL": 3600},
            f"mx.{DEST_DOMAIN}": {"A": ["127.0.0.1"], "TTL": 3600},
            # bench/perf/sample.py's capture server (every side routes this domain to it)
            "capture.example": {"MX": [(10, "mx.capture.example")], "TTL": 3600},
            "mx.capture.example": {"A": ["127.0.0.1"], "TTL": 3600},
        }
        if dkim_public:
            zones[f"bench._domainkey.{SENDER_DOMAIN}"] = {"TXT": f"v=DKIM1; k=rsa; p={dkim_public}"}
        # It wakes only to check for stop(): a test's 5 ms would be 400 wake-ups a second
        # in the harness while the side is timed.
        self.server = TestDnsServer(zones, poll_interval=0.5)

    def __enter__(self) -> BenchDns:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def address(self) -> str:
        return str(self.server.address)


@dataclass
class KumocoreSettings:
    sink_port: int
    dns: str
    connections: int = 20
    http: bool = True
    dkim_key: Path | None = None  # None: no DKIM signing
    local_logs: bool = True
    loop: str = "uvloop"  # kumocore's default; "asyncio" forces the standard loop
    shutdown_timeout: float = 10.0
    #: ``kumocore serve --workers N``; ``connections`` is the node's total, split among them.
    workers: int = 1
    #: the port of bench/perf/sample.py's capture server (0: none)
    sample_port: int = 0
    #: another checkout whose core and plugins this instance runs (``--baseline``);
    #: None: this one
    tree: Path | None = None
    #: the ``data`` spool's kind; see :func:`data_kind_for`
    data_kind: str = "LMDB"
    #: the ``meta`` spool's kind: ``LMDB`` with ``LMDB`` bodies shares their environment
    #: (one transaction for both); see :func:`meta_kind_for`
    meta_kind: str = "LMDB"


def data_kind_for(settings: KumocoreSettings) -> str:
    """The data spool kind an instance runs: a baseline checkout without the LMDB
    plugin (before the eleventh round) keeps its bodies in RocksDB, as it always did."""
    tree = settings.tree
    if settings.data_kind == "LMDB" and tree is not None and not (
            tree / "plugins" / "lmdb_spool").is_dir():
        return "RocksDB"
    return settings.data_kind


def meta_kind_for(settings: KumocoreSettings) -> str:
    """The meta spool kind an instance runs: LMDB only beside LMDB bodies and in a tree
    whose LMDB spools can share an environment (the thirteenth round on); else RocksDB,
    as every run before did."""
    tree = REPO if settings.tree is None else settings.tree
    shares = (tree / "plugins" / "lmdb_spool" / "kumocore_lmdb_spool" / "environment.py").is_file()
    if settings.meta_kind == "LMDB" and data_kind_for(settings) == "LMDB" and shares:
        return "LMDB"
    return "RocksDB"


def plugins_missing_from(tree: Path) -> list[str]:
    """Entry-point names of this checkout's built-in plugins that ``tree`` lacks: they are
    installed (editable) in the environment, but a baseline's core cannot load them."""
    names: list[str] = []
    for project in sorted((REPO / "plugins").glob("*/pyproject.toml")):
        if (tree / "plugins" / project.parent.name).is_dir():
            continue
        with project.open("rb") as source:
            points = tomllib.load(source).get("project", {}).get("entry-points", {})
        names += sorted(points.get("kumocore", {}))
    return names


def tree_pythonpath(tree: Path, inherited: str = "") -> str:
    """``PYTHONPATH`` that makes ``tree``'s built-in plugins win over this checkout's
    editable installs (their finders come after ``sys.path``). Its core comes first
    anyway: ``python -m`` puts the working directory, ``tree``, ahead of everything."""
    plugins = sorted(str(path) for path in (tree / "plugins").iterdir() if path.is_dir())
    return os.pathsep.join([str(tree), *plugins, *([inherited] if inherited else [])])


class KumocoreInstance(ChildProcess):
    """One ``kumocore serve`` process with the benchmark policy, in ``root``."""

    def __init__(self, root: Path, settings: KumocoreSettings) -> None:
        # SIGTERM is a graceful stop: it gets the server's own shutdown timeout and more
        stop_timeout = settings.shutdown_timeout + 10
        super().__init__("kumocore", root / "kumocore.log", stop_timeout=stop_timeout)
        self.root = root
        self.var = root / "var"
        self.settings = settings
        self.smtp_port = free_port()
        self.http_port = free_port() if settings.http else None
        self.started_at = 0.0
        self.ready_at = 0.0

    def environment(self) -> dict[str, str]:
        # The workers of a node share one connection_limit (the supervisor's node throttle
        # store), so the node's total is the limit: as many connections as Postfix opens.
        per_worker = self.settings.connections
        env = dict(os.environ)
        env.update(
            KUMOCORE_BENCH_VAR=str(self.var),
            KUMOCORE_BENCH_SMTP=f"127.0.0.1:{self.smtp_port}",
            KUMOCORE_BENCH_HTTP=f"127.0.0.1:{self.http_port}" if self.http_port else "",
            KUMOCORE_BENCH_DNS=self.settings.dns,
            KUMOCORE_BENCH_SINK_PORT=str(self.settings.sink_port),
            KUMOCORE_BENCH_SAMPLE_PORT=str(self.settings.sample_port),
            KUMOCORE_BENCH_CONNECTIONS=str(per_worker),
            KUMOCORE_BENCH_LOCAL_LOGS="1" if self.settings.local_logs else "0",
            KUMOCORE_BENCH_DATA_KIND=data_kind_for(self.settings),
            KUMOCORE_BENCH_META_KIND=meta_kind_for(self.settings),
            PYTHONUNBUFFERED="1",
            KUMOCORE_EVENT_LOOP=self.settings.loop,
        )
        key = self.settings.dkim_key
        env["KUMOCORE_BENCH_DKIM_KEY"] = str(key) if key else ""
        # The benchmark measures what `make serve` runs: without the example plugins that
        # `make test` installs into the same environment (kumocore.policy.plugins reads
        # KUMOCORE_BLOCK_PLUGINS). CI benchmarks right after the tests.
        blocked = [env.get("KUMOCORE_BLOCK_PLUGINS", ""), *BLOCKED_PLUGINS.split(",")]
        if self.settings.tree is not None:
            env["PYTHONPATH"] = tree_pythonpath(self.settings.tree, env.get("PYTHONPATH", ""))
            blocked += plugins_missing_from(self.settings.tree)
        env["KUMOCORE_BLOCK_PLUGINS"] = ",".join(name for name in blocked if name)
        return env

    def working_directory(self) -> Path:
        """Where ``kumocore serve`` starts. It decides which core ``python -m`` imports:
        the working directory comes first on ``sys.path``, before ``PYTHONPATH``."""
        return self.settings.tree or REPO

    def command(self, policy: Path) -> list[str]:
        serve = ["serve", "--policy", str(policy)]
        serve += ["--shutdown-timeout", str(self.settings.shutdown_timeout)]
        serve += ["--workers", str(self.settings.workers)]  # the default is one per core
        return [sys.executable, "-m", "kumocore.node.cli", *serve]

    def start(self, *, ready_timeout: float = 120.0) -> KumocoreInstance:
        self.root.mkdir(parents=True, exist_ok=True)
        policy = self.root / POLICY.name
        shutil.copyfile(POLICY, policy)
        self.started_at = time.perf_counter()
        self.launch(
            self.command(policy),
            self._wait_ready(ready_timeout),
            cwd=self.working_directory(),
            env=self.environment(),
        )
        self.ready_at = time.perf_counter()
        return self

    def _wait_ready(self, timeout: float) -> Callable[[], None]:
        def ready() -> None:
            wait_for_port("127.0.0.1", self.smtp_port, timeout, alive=self.alive)
            if self.http_port:
                wait_for_port("127.0.0.1", self.http_port, 10, alive=self.alive)

        return ready

    def __enter__(self) -> KumocoreInstance:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ observation
    def recovery_logged(self) -> tuple[int, float] | None:
        """``(messages, seconds)`` from the server's "spool recovered" line."""
        found = None
        for line in self.log_text().splitlines():
            if "spool recovered" not in line:
                continue
            try:
                record = json.loads(line)
                found = (int(record["messages"]), float(record["seconds"]))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def errors_logged(self) -> list[str]:
        return [
            line[:300]
            for line in self.log_text().splitlines()
            if '"level": "error"' in line or "Traceback" in line
        ]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, of its children that exited and were
    waited for (cutime, cstime: Postfix's short-lived daemons) and of its live descendants
    (the workers of ``serve --workers N``, Haraka's cluster), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = sum(int(value) for value in fields[11:15]) / ticks
    return own + sum(_cpu_or_zero(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(child) for child in fh.read().split()]
    except OSError:
        return []


def _cpu_or_zero(pid: int) -> float:
    try:
        return process_cpu_seconds(pid)
    except OSError:  # it exited between the listing and the read
        return 0.0


# ----------------------------------------------------------------------------- profiling


def py_spy_path() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def profile_with_py_spy(
    pid: int, output: Path, duration: float, *, gil: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` (collapsed stacks, 100 Hz, non-blocking) on ``pid``;
    with ``gil``, only the thread holding the GIL is sampled."""
    tool = py_spy_path()
    if tool is None:
        raise LoadError("py-spy is not installed (pip install py-spy)")
    command = [
        tool,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(duration))),
        "--rate",
        "100",
        "--nonblocking",
        "--threads",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    if gil:
        command.append("--gil")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@dataclass
class ProfileEntry:
    function: str
    own_percent: float
    total_percent: float


def _read_stacks(collapsed: Path, thread: int | None) -> list[tuple[list[str], int]]:
    """``(frames, count)`` per line of py-spy raw output (``--threads``: the first frame is
    ``thread (TID): NAME``); only ``thread``'s stacks when given, thread frames dropped."""
    stacks = []
    with contextlib.suppress(OSError), open(collapsed) as fh:
        for line in fh:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            frames = stack.split(";")
            if frames and frames[0].startswith("thread ("):
                tid = frames.pop(0)[len("thread (") :].split(")", 1)[0]
                if thread is not None and tid != str(thread):
                    continue
            elif thread is not None:
                continue
            stacks.append(([_short_frame(frame) for frame in frames], int(count_text)))
    return stacks


def top_functions(
    collapsed: Path, limit: int = 20, *, thread: int | None = None
) -> tuple[int, list[ProfileEntry]]:
    """Functions by own ("self") samples, with their inclusive share, from py-spy raw output
    (one thread's samples when ``thread`` is given: the event loop's is the process id)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for frames, count in _read_stacks(collapsed, thread):
        samples += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if samples == 0:
        return 0, []
    entries = [
        ProfileEntry(name, 100.0 * count / samples, 100.0 * total[name] / samples)
        for name, count in own.most_common(limit)
    ]
    return samples, entries


def top_inclusive(
    collapsed: Path, prefixes: tuple[str, ...], limit: int = 15, *, thread: int | None = None
) -> list[ProfileEntry]:
    """The biggest inclusive entries among frames whose file matches ``prefixes``."""
    total: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    samples = 0
    for frames, count in _read_stacks(collapsed, thread):
        samples += count
        for frame in set(frames):
            if any(p in frame for p in prefixes):
                total[frame] += count
        if frames:
            own[frames[-1]] += count
    if samples == 0:
        return []
    return [
        ProfileEntry(name, 100.0 * own[name] / samples, 100.0 * count / samples)
        for name, count in total.most_common(limit)
    ]


_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short_frame(frame: str) -> str:
    """``fn (/long/path/kumocore/x/y.py:12)`` → ``fn (kumocore/x/y.py)`` (lines merged)."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("/site-packages/", "/lib/python3", "/work/main/", str(REPO) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker.startswith("/lib/python3"):
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    return f"{match['fn']} ({path})"
