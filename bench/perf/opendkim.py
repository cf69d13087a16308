"""OpenDKIM as the signing milter of the private Postfix (the "Postfix + OpenDKIM" peer).

Debian's ``opendkim`` (installed by ``scripts/setup.sh``) runs in the foreground
(``opendkim -f -x <tmp>/opendkim.conf``) as the ``opendkim`` user, listening on an inet
unix socket in the instance's directory that Postfix's ``smtpd_milters``
points at. It signs every message
from ``bench.example`` the way kumocore and Haraka do: RSA 2048 (the same key, selector
``bench``), relaxed/relaxed, the same five headers. Mail from 127.0.0.0/8 is "internal",
so it is signed, never verified. A milter failure tempfails the message
(``milter_default_action = tempfail``), so an unsigned message can never pass for a
signed one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench.perf.child import ChildProcess
from bench.perf.load import SENDER_DOMAIN, LoadError

USER = "opendkim"
SIGNED_HEADERS = "From,To,Subject,Date,Message-ID"


def opendkim_missing() -> str | None:
    """Why OpenDKIM cannot run here, or None."""
    if opendkim_path() is None:
        return "opendkim is not installed (scripts/setup.sh: apt-get install opendkim)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"user {USER!r} does not exist (Debian's opendkim package creates it)"
    return None


def opendkim_path() -> str | None:
    return shutil.which("opendkim") or shutil.which("opendkim", path="/usr/sbin")


def opendkim_version() -> str:
    path = opendkim_path()
    if path is None:
        return "not installed"
    try:
        out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    first = (out.stdout or out.stderr).splitlines()
    return first[0].strip() if first else "unknown"


class OpenDkim(ChildProcess):
    """One ``opendkim`` milter on ``127.0.0.1:<port>`` signing with ``key``."""

    def __init__(self, root: Path, key: Path) -> None:
        super().__init__("opendkim", root / "opendkim.log", stop_timeout=10)
        self.root = root
        self.key = key
        self.path = root / "milter" / "opendkim.sock"  # a directory user opendkim owns

    @property
    def socket(self) -> str:
        """The milter address in Postfix's syntax."""
        return f"unix:{self.path}"

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        owner = pwd.getpwnam(USER)
        key = self.root / "opendkim.key"
        shutil.copyfile(self.key, key)
        os.chown(key, owner.pw_uid, owner.pw_gid)
        self.path.parent.mkdir(exist_ok=True)
        os.chown(self.path.parent, owner.pw_uid, owner.pw_gid)
        key.chmod(0o600)
        settings = {
            "Syslog": "no",
            "Background": "no",
            "Mode": "s",
            # A unix socket: over loopback TCP, the milter's small writes meet Nagle's
            # algorithm and delayed ACKs (measured: ~100 ms per message, 196 msg/s).
            "Socket": f"local:{self.path}",
            "UMask": "000",  # Postfix's smtpd (user postfix) must connect to it
            "UserID": USER,
            "Domain": SENDER_DOMAIN,
            "Selector": "bench",
            "KeyFile": str(key),
            "Canonicalization": "relaxed/relaxed",
            "SignatureAlgorithm": "rsa-sha256",
            "SignHeaders": SIGNED_HEADERS,
            "OversignHeaders": "",
            "InternalHosts": "127.0.0.0/8",
            "RequireSafeKeys": "false",
            "PidFile": str(self.root / "opendkim.pid"),
        }
        conf = self.root / "opendkim.conf"
        conf.write_text("".join(f"{key} {value}\n" for key, value in settings.items() if value))
        return conf

    def start(self, timeout: float = 20) -> OpenDkim:
        missing = opendkim_missing()
        if missing:
            raise LoadError(f"opendkim: {missing}")
        conf = self.write_config()
        self.launch(
            [opendkim_path() or "opendkim", "-f", "-x", str(conf)],
            lambda: _wait_for_socket(self.path, timeout, self.alive),
        )
        return self


def _wait_for_socket(path: Path, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise LoadError(f"opendkim exited before listening on {path}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(path))
                return
        except OSError:
            time.sleep(0.05)
    raise LoadError(f"nothing listens on {path} after {timeout:.0f}s")
