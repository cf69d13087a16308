"""A real ``kumocore serve`` process: start, SIGKILL, restart, stop, inspect its spool."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common.server_policy import ServerSpec, render_policy
from bench.common.world import REPO, raise_nofile


class KumoServer:
    """One kumocore process over a fixed spool/log directory; restartable, killable."""

    def __init__(self, spec: ServerSpec, workdir: Path | str) -> None:
        self.spec = spec
        self.workdir = Path(workdir)
        self.var = self.workdir / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.policy = self.workdir / "policy.py"
        self.log_path = self.workdir / "server.log"
        self.write_policy()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_level = spec.log_level
        self.starts = 0
        self.kills = 0

    def write_policy(self) -> None:
        self.policy.write_text(render_policy(self.spec, self.var))

    @property
    def port(self) -> int:
        return self.spec.smtp_port

    @property
    def log_dir(self) -> Path:
        return self.var / "logs"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        # ``kumocore serve``; the fd limit is inherited from this process (raise_nofile).
        return [
            sys.executable,
            "-m",
            "kumocore.node.cli",
            "--log-level",
            self.log_level,
            "serve",
            "--policy",
            str(self.policy),
            "--shutdown-timeout",
            "10",
            # One process: the harness kill -9s its pid and reads the spool at its path
            # (the default is one worker per core).
            "--workers",
            "1",
        ]

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to be ready."""
        if self.alive:
            raise RuntimeError("kumocore is already running")
        raise_nofile()
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.starts += 1
        return self.process

    def start(self, timeout: float = 30.0) -> KumoServer:
        """Start and wait for the ESMTP banner."""
        self.spawn()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds until a client got ``220``; raises with the log tail if it never does."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"kumocore exited ({self.exit_code()}):\n{self.log_tail()}")
            if banner(self.port) == 220:
                return time.monotonic() - started
            time.sleep(0.02)
        raise RuntimeError(f"kumocore not ready after {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, nothing flushed that was not already written."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1
        if self.process is not None:
            self.process.wait(10)

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful stop); SIGKILL after ``timeout``. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def rss_kib(self) -> int:
        """Resident memory of the server process, in KiB (0 when not running)."""
        if not self.alive or self.process is None:
            return 0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def spool_records(self, spool: str = "meta") -> dict[bytes, bytes]:
        """Every record of a spool (the server must be stopped)."""
        import rocksdict

        db = rocksdict.Rdict(
            str(self.var / "spool" / spool),
            rocksdict.Options(raw_mode=True),
            access_type=rocksdict.AccessType.read_only(),
        )
        try:
            return {_raw(k): _raw(v) for k, v in db.items()}
        finally:
            db.close()

    def spool_put(self, records: dict[bytes, bytes | None], spool: str = "meta") -> None:
        """Write (or, for None, delete) raw records into a spool (the server must be stopped)."""
        import rocksdict

        if self.alive:
            raise RuntimeError("stop kumocore before writing into its spool")
        db = rocksdict.Rdict(str(self.var / "spool" / spool), rocksdict.Options(raw_mode=True))
        try:
            for key, value in records.items():
                if value is None:
                    del db[key]
                else:
                    db[key] = value
            db.flush_wal(True)
        finally:
            db.close()

    def spooled_ids(self) -> set[str]:
        """Message ids in the meta spool (server must be stopped); quarantined ones aside."""
        path = self.var / "spool" / self.spec.meta_dir
        if not path.exists():
            return set()
        keys = (_lmdb_keys(path, "meta") if self.spec.spool_kind == "LMDB"
                else _rocksdb_keys(path))
        return {k for k in keys if not k.startswith("quarantine:")}


def _rocksdb_keys(path: Path) -> list[str]:
    """The keys of the RocksDB spool at ``path``, opened read-only."""
    import rocksdict

    db = rocksdict.Rdict(
        str(path),
        rocksdict.Options(raw_mode=True),
        access_type=rocksdict.AccessType.read_only(),
    )
    try:
        return [_raw(k).decode("utf-8", "replace") for k in db.keys()]  # noqa: SIM118
    finally:
        db.close()


def _lmdb_keys(path: Path, spool: str) -> list[str]:
    """The keys of the LMDB spool ``spool`` in the environment at ``path``."""
    from kumocore_lmdb_spool.environment import databases_of, open_environment

    env = open_environment(str(path))
    try:
        ids = databases_of(env, spool).ids
        with env.begin(db=ids) as txn:
            return [bytes(key).decode("utf-8", "replace")
                    for key in txn.cursor().iternext(keys=True, values=False)]
    finally:
        env.close()


def _raw(value: object) -> bytes:
    """A key or value of a spool opened in raw mode (rocksdict types them loosely)."""
    if not isinstance(value, bytes):
        raise TypeError(f"raw-mode RocksDB gave {type(value).__name__}, not bytes")
    return value


def _load_prctl() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # loaded here: after fork() only async-signal-safe work is wise
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGKILL when the bench process goes away (no orphaned servers)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def banner(port: int, timeout: float = 1.0) -> int | None:
    """The greeting's reply code, or None when nobody answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            line = sock.recv(512)
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
            return int(line[:3]) if line[:3].isdigit() else None
    except OSError:
        return None
