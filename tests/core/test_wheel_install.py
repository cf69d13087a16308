"""Installed from wheels, as the Dockerfile installs it: no checkout on the path.

No container engine runs on these machines, so this test runs the Dockerfile's install
step (``scripts/install-wheels.sh``) into a fresh virtualenv, then serves the bundled
default policy from another directory — with the listen addresses the Dockerfile's
environment sets — and sends it a message.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.common.redis_server import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_the_dockerfiles_install_step_gives_a_kumocore_that_serves_the_default_policy(
    tmp_path: Path,
) -> None:
    prefix = tmp_path / "opt"
    install = subprocess.run([str(ROOT / "scripts/install-wheels.sh"), str(prefix), sys.executable],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    kumocore = prefix / "bin" / "kumocore"
    policy = subprocess.run([str(kumocore), "default-policy"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60).stdout.strip()  # fmt: skip
    assert policy.startswith(str(prefix)), policy  # package data of the installed wheel
    if shutil.which("cc") or shutil.which("gcc"):  # the optional C scan is in the wheel
        native = subprocess.run(
            [str(prefix / "bin" / "python"), "-c",
             "from kumocore.mail import crlf; print(crlf.crlf_scan_native is not None)"],
            capture_output=True, text=True, cwd=tmp_path, timeout=60)  # fmt: skip
        assert native.stdout.strip() == "True", native.stdout + native.stderr
    smtp, http = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], "KUMOCORE_VAR": str(tmp_path / "var"),
           "KUMOCORE_SMTP_LISTEN": f"127.0.0.1:{smtp}",
           "KUMOCORE_HTTP_LISTEN": f"127.0.0.1:{http}"}  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([str(kumocore), "serve", "--policy", policy], cwd=tmp_path,
                              env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while b"kumocore ready" not in (tmp_path / "serve.log").read_bytes():
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            refused = client.sendmail("a@example.com", ["b@nowhere.invalid"],
                                      "Subject: installed\r\n\r\nhello\r\n")  # fmt: skip
        assert refused == {}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
