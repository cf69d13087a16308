"""The README's first-delivery walkthrough, run exactly as written.

The commands come from README.md's code blocks marked ``<!-- walkthrough: ... -->``, so
the test fails when the README drifts. They run with bash in a stand-in checkout (the
Makefile, ``.venv`` and ``kumocore/`` of this one, linked; its own ``var/``), as a
newcomer runs them after ``make serve`` installed everything. Three things differ, none
in the commands themselves: the README's fixed ports are swapped for free ones (other
tests run in parallel), ``make serve`` is told not to uninstall the example plugins the
test environment needs (``MAKEFLAGS=EXAMPLE_PLUGINS=``), and those plugins are blocked.

Then the sink must hold every message sent, each with a DKIM signature that dkimpy
verifies against the key the walkthrough generated, and the text log must show their
Delivery lines.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from bench.common.redis_server import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MARKED = re.compile(
    r"<!-- walkthrough: (?P<how>run|background (?P<address>[\d.]+:\d+))"
    r"(?:, until (?P<until>\w+))? -->\s*```sh\n(?P<script>.*?)```",
    re.DOTALL,
)


@dataclass
class Step:
    script: str
    background: str | None  # the address that accepts once it is up
    until: str | None  # run again until the output shows this


def walkthrough() -> list[Step]:
    readme = (REPO / "README.md").read_text()
    return [Step(m["script"], m["address"], m["until"]) for m in MARKED.finditer(readme)]


def test_the_readme_walkthrough_has_the_steps_this_test_checks() -> None:
    steps = walkthrough()
    assert [s.background is not None for s in steps] == [False, True, True, False, False]
    assert "make serve" in steps[2].script and "KUMOCORE_DKIM_KEY" in steps[2].script
    assert "swaks" in steps[3].script and "/api/inject/v1" in steps[3].script
    assert "logs cat var/logs --format text" in steps[4].script
    # The README still opens with the two commands.
    head = (REPO / "README.md").read_text().split("```", 2)[1]
    assert "make serve" in head and "make test" in head


def stand_in_checkout(root: Path) -> None:
    """This checkout's Makefile, virtualenv and package, linked; the install counts as done
    (the Makefile's install prerequisites are present and older than the virtualenv)."""
    for name in ("Makefile", ".venv", "kumocore"):
        (root / name).symlink_to(REPO / name)
    (root / "scripts").mkdir()
    for name in ("pyproject.toml", "setup.py", "scripts/setup.sh"):
        shutil.copy(REPO / name, root / name)
        os.utime(root / name, (0, 0))


def accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 1):
        return True
    return False


def dns_record(key_file: Path) -> bytes:
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in reversed(started):  # kumocore first, then the sink
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_newcomer_following_the_readme_gets_a_signed_delivered_message_and_its_log_line(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    checkout = tmp_path / "kumocore"
    checkout.mkdir()
    stand_in_checkout(checkout)
    ports = {"127.0.0.1:2025": f"127.0.0.1:{free_port()}",
             "127.0.0.1:2526": f"127.0.0.1:{free_port()}",
             "127.0.0.1:8000": f"127.0.0.1:{free_port()}"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMOCORE_")}
    env.update(KUMOCORE_SMTP_LISTEN=ports["127.0.0.1:2025"],
               KUMOCORE_HTTP_LISTEN=ports["127.0.0.1:8000"],
               KUMOCORE_BLOCK_PLUGINS="hello,webhook_sink",
               MAKEFLAGS="EXAMPLE_PLUGINS=")  # fmt: skip

    def local(text: str) -> str:
        for readme_address, ours in ports.items():
            text = text.replace(readme_address, ours)
        return text

    output = ""
    for n, step in enumerate(walkthrough()):
        script = local(step.script)
        if step.background is not None:
            with (tmp_path / f"step{n}.log").open("wb") as log:
                process = subprocess.Popen(["bash", "-c", script], cwd=checkout, env=env,
                                           stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL,
                                           start_new_session=True)  # fmt: skip
            background.append(process)
            deadline = time.monotonic() + 120
            while not accepts(local(step.background)):
                text = (tmp_path / f"step{n}.log").read_text(errors="replace")
                assert process.poll() is None, f"step {n} exited:\n{script}\n{text}"
                assert time.monotonic() < deadline, f"step {n} never listened:\n{text}"
                time.sleep(0.2)
            continue
        deadline = time.monotonic() + 60
        while True:
            result = subprocess.run(["bash", "-e", "-c", script], cwd=checkout, env=env,
                                    capture_output=True, text=True, timeout=120)  # fmt: skip
            assert result.returncode == 0, f"step {n}:\n{script}\n{result.stderr}"
            output = result.stdout
            if step.until is None or step.until in output or time.monotonic() > deadline:
                break
            time.sleep(1.0)

    key = checkout / "var" / "dkim.pem"
    received = sorted((checkout / "var" / "sink").glob("*.eml"))
    assert len(received) == 2, received  # one over SMTP, one over HTTP
    for path in received:
        message = path.read_bytes()
        assert message.startswith(b"DKIM-Signature:") or b"\r\nDKIM-Signature:" in message
        assert dkim.verify(message, dnsfunc=lambda name, timeout=5: dns_record(key)), path
    deliveries = [line for line in output.splitlines() if " Delivery " in line]
    assert len(deliveries) == 2, output
    assert all("me@example.com -> you@example.net  250" in line for line in deliveries)
    serve_log = (tmp_path / "step2.log").read_text(errors="replace")
    assert "kumocore ready" in serve_log
    assert "removing the example plugins" not in serve_log
