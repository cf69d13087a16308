"""A private Postfix instance, used as the reference relay.

Everything lives under one temp directory: ``etc/`` (``main.cf``, ``master.cf``, given to
every command with ``postfix -c``), ``queue/`` (``queue_directory``, created by Postfix's
own ``post-install``), ``data/`` (``data_directory``) and ``maillog`` (``maillog_file``
via ``postlogd``, so no syslog is needed). The system's ``/etc/postfix`` is only read (the
``postfix-files`` manifest through the default ``meta_directory``), never written.

With ``milter``, every message received by ``smtpd`` passes through that milter
(OpenDKIM, :mod:`bench.perf.opendkim`) before it is queued. With ``sample``, mail for one
domain goes to a capture server instead of the sink (the harness's DKIM and queue check).

Settings: a relay for ``127.0.0.0/8`` listening on 127.0.0.1:<smtpd_port>, every message
to ``relayhost = [127.0.0.1]:<sink port>`` (no DNS), up to ``concurrency`` parallel
deliveries to it (``smtp_destination_concurrency_limit``), Postfix's default durability
(the queue file is fsynced before ``250``) and default process limits. Services run
unchrooted (a chroot would need copies of /etc files in the queue directory and changes
nothing measurable). Local delivery is disabled.

:meth:`PostfixInstance.stop` is idempotent and also registered with :mod:`atexit`, so a
crashed benchmark does not leave a Postfix running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pty
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.perf.child import tail
from bench.perf.load import LoadError, tool_path, wait_for_port

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(LoadError):
    """The private Postfix instance could not be configured, started or stopped."""


class PostfixInstance:
    """One private Postfix relaying everything to ``[127.0.0.1]:relay_port``."""

    def __init__(
        self,
        root: Path,
        *,
        smtpd_port: int,
        relay_port: int,
        concurrency: int = 20,
        milter: str | None = None,
        sample: tuple[str, int] | None = None,
    ) -> None:
        self.root = root
        self.etc = root / "etc"
        self.queue = root / "queue"
        self.data = root / "data"
        self.maillog = root / "maillog"
        self.smtpd_port = smtpd_port
        self.relay_port = relay_port
        self.concurrency = concurrency
        self.owner = "postfix"
        self.milter = milter  # e.g. OpenDKIM's socket: every message passes through it
        self.sample = sample  # (domain, port): that domain's mail goes to a capture server
        self._running = False

    # ------------------------------------------------------------------ configuration
    def settings(self) -> dict[str, str]:
        extra = {}
        if self.milter:
            extra = {
                "smtpd_milters": self.milter,
                "non_smtpd_milters": "",
                "milter_default_action": "tempfail",
            }
        if self.sample:
            domain, port = self.sample
            extra["transport_maps"] = f"inline:{{{domain}=smtp:[127.0.0.1]:{port}}}"
        return extra | {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "mail_owner": self.owner,
            "setgid_group": "postdrop",
            "myhostname": "postfix.bench.example",
            "mydomain": "bench.example",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:local delivery is disabled",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": f"[127.0.0.1]:{self.relay_port}",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtp_destination_concurrency_limit": str(self.concurrency),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            "biff": "no",
        }

    def write_config(self) -> None:
        if not tool_path("postfix"):
            raise PostfixError("postfix is not installed (apt-get install postfix)")
        if os.geteuid() != 0:
            raise PostfixError("a private Postfix instance needs root (postfix start)")
        try:
            owner = pwd.getpwnam(self.owner)
        except KeyError:
            raise PostfixError(
                f"user {self.owner!r} (Postfix's mail_owner) does not exist"
            ) from None
        for directory in (self.root, self.etc, self.queue, self.data):
            directory.mkdir(parents=True, exist_ok=True)
        # Postfix daemons run as mail_owner and must reach the queue directory.
        os.chmod(self.root, 0o755)
        for parent in self.root.parents:
            if not parent.stat().st_mode & 0o001:
                raise PostfixError(
                    f"{parent} is not searchable by {self.owner!r}; use a work directory "
                    "under /tmp (--workdir)"
                )
        os.chown(self.data, owner.pw_uid, owner.pw_gid)
        main_cf = "".join(f"{key} = {value}\n" for key, value in self.settings().items())
        (self.etc / "main.cf").write_text(main_cf)
        listen = f"127.0.0.1:{self.smtpd_port}"
        (self.etc / "master.cf").write_text(MASTER_CF.format(listen=listen))
        self._postfix("check")

    # ------------------------------------------------------------------ lifecycle
    def _postfix(self, *args: str, timeout: float = 60) -> str:
        """Run ``postfix -c etc ...``; its stderr on a pty (Postfix only prints errors to a
        terminal, otherwise to syslog)."""
        master, slave = pty.openpty()
        try:
            proc = subprocess.run(
                [tool_path("postfix") or "postfix", "-c", str(self.etc), *args],
                stdin=subprocess.DEVNULL,
                stdout=slave,
                stderr=slave,
                timeout=timeout,
                check=False,
            )
            os.close(slave)
            slave = -1
            output = _drain(master)
        finally:
            if slave >= 0:
                os.close(slave)
            os.close(master)
        if proc.returncode != 0:
            raise PostfixError(
                f"postfix {' '.join(args)} failed ({proc.returncode}): {output.strip()}\n"
                f"{self.log_tail()}"
            )
        return output

    def start(self) -> PostfixInstance:
        self.write_config()
        atexit.register(self.stop)
        self._running = True
        self._postfix("start")
        wait_for_port("127.0.0.1", self.smtpd_port, 20)
        return self

    def master_pid(self) -> int | None:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the instance (idempotent); SIGKILL its master if a clean stop hangs."""
        if not self._running:
            return
        self._running = False
        pid = self.master_pid()
        with contextlib.suppress(PostfixError, subprocess.TimeoutExpired):
            self._postfix("stop", timeout=30)
        if pid is not None and not _wait_gone(pid, 15):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        _wait_port_free(self.smtpd_port, 10)

    def __enter__(self) -> PostfixInstance:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ diagnostics
    def queue_counts(self) -> dict[str, int]:
        counts = {}
        for name in ("maildrop", "incoming", "active", "deferred", "hold"):
            directory = self.queue / name
            counts[name] = sum(len(files) for _, _, files in os.walk(directory))
        return counts

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.maillog, lines)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side of the pty is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        time.sleep(0.05)
    return False


def _wait_port_free(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except OSError:
            return
        time.sleep(0.1)
