"""The load: test messages, Postfix's ``smtp-source``, the sink, HTTP injection.

Throughput is counted at the sink. :class:`SmtpSink` runs ``kc-sink`` (bench/perf/sink.c,
built into the run's directory by :func:`sink_program`) or Postfix's ``smtp-sink``, both as
``-c -M N``: each prints
a running ``mesg=<n>`` counter as each ``.`` arrives and exits after the N-th message, so
"the sink has received all N" is an event we can time without a Python sink in the path.
A reader thread timestamps the counter updates (first and last message). It reads at most
once per :data:`READ_PAUSE`: the sink prints a line per message, and a reader woken for
each of them (1,800 a second at 100 KB) took 2-3 % of the machine's CPU from the side it
was timing, more from a faster side. The pause bounds the timing error to 2 ms per run.
"""

from __future__ import annotations

import base64
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from bench.common.ports import free_port as free_port

SMTP_SOURCE = "smtp-source"
SMTP_SINK = "smtp-sink"
#: The benchmark's own sink (bench/perf/sink.c): smtp-sink's replies and counter, at a
#: fraction of its CPU per message (see docs/performance.md, "The sink").
KC_SINK = "kc-sink"
SINKS = (KC_SINK, SMTP_SINK)
SINK_SOURCE = Path(__file__).with_name("sink.c")
#: The sender domain (DKIM-signed by kumocore) and the destination domain (MX → sink).
SENDER_DOMAIN = "bench.example"
DEST_DOMAIN = "dest.example"
SENDER = f"sender@{SENDER_DOMAIN}"
RECIPIENT = f"rcpt@{DEST_DOMAIN}"

_COUNTER = re.compile(rb"mesg=(\d+)")
#: The reader's pause between two reads of the sink's counter (see the module docstring).
READ_PAUSE = 0.002


class LoadError(RuntimeError):
    """The load generator or the sink failed (not: the MTA was slow)."""


def tool_path(name: str) -> str | None:
    """Where ``name`` is (Postfix puts its tools in /usr/sbin, often not on PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/lib/postfix/sbin")


def missing_tools() -> list[str]:
    return [tool for tool in (SMTP_SOURCE, SMTP_SINK, "postfix", "postconf") if not tool_path(tool)]


def sink_program(name: str, where: Path) -> str:
    """The program for sink ``name``: ``kc-sink`` is compiled into ``where`` first."""
    if name == SMTP_SINK:
        return tool_path(SMTP_SINK) or SMTP_SINK
    if name != KC_SINK:
        raise LoadError(f"unknown sink {name!r}: one of {', '.join(SINKS)}")
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise LoadError("kc-sink needs a C compiler (apt-get install gcc); or --sink smtp-sink")
    program = where / KC_SINK
    built = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(program), str(SINK_SOURCE)],
        capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise LoadError(f"cannot build kc-sink: {built.stderr.strip()[-800:]}")
    return str(program)


def wait_for_port(host: str, port: int, timeout: float, *, alive: Any = None) -> None:
    """Wait until something accepts TCP connections on (host, port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise LoadError(f"process died before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise LoadError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def unprivileged_user() -> str | None:
    """The ``-u`` user for smtp-sink when we run as root (it refuses to stay root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postfix", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise LoadError("running as root but neither user 'postfix' nor 'nobody' exists")


# ----------------------------------------------------------------------------- messages


def make_message(size: int, *, seed: int = 8) -> bytes:
    """A realistic RFC 5322 message of about ``size`` bytes (LF line ends, as in a file).

    Small messages are one text/plain part; from 8 KB on, a multipart/mixed message with
    a text part and a base64 "attachment" (what a 50 KB bulk message usually is).
    """
    rng = random.Random(seed)
    words = (
        "account",
        "update",
        "your",
        "order",
        "shipped",
        "delivery",
        "invoice",
        "thanks",
        "for",
        "the",
        "newsletter",
        "offer",
        "weekly",
        "news",
        "team",
    )
    headers = (
        f'From: "Bench Sender" <{SENDER}>\n'
        f"To: <{RECIPIENT}>\n"
        "Subject: Your weekly kumocore benchmark newsletter\n"
        f"Date: {formatdate(0, usegmt=True)}\n"
        f"Message-ID: <bench.{seed}@{SENDER_DOMAIN}>\n"
        "MIME-Version: 1.0\n"
        "X-Campaign: weekly\n"
    )

    def text(n: int) -> str:
        lines, total = [], 0
        while total < n:
            line = " ".join(rng.choice(words) for _ in range(11)).capitalize() + "."
            lines.append(line)
            total += len(line) + 1
        return "\n".join(lines) + "\n"

    budget = max(size - len(headers) - 60, 100)
    if size < 8192:
        body = "Content-Type: text/plain; charset=us-ascii\n\n" + text(budget)
        return (headers + body).encode()
    boundary = "=_kumocore_bench_boundary"
    text_part = text(min(2000, budget // 4))
    raw = rng.randbytes(max((budget - len(text_part) - 400) * 3 // 4, 100))
    encoded = base64.encodebytes(raw).decode()  # 76-character lines
    body = (
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n{text_part}\n"
        f"--{boundary}\nContent-Type: application/octet-stream\n"
        'Content-Disposition: attachment; filename="report.bin"\n'
        f"Content-Transfer-Encoding: base64\n\n{encoded}\n--{boundary}--\n"
    )
    return (headers + body).encode()


def write_message(directory: Path, size: int) -> Path:
    path = directory / f"message-{size}.eml"
    path.write_bytes(make_message(size))
    return path


# ----------------------------------------------------------------------------- the sink


@dataclass
class SinkResult:
    """What the sink saw: how many messages, and when the first and the last arrived."""

    expected: int
    received: int
    first_at: float | None
    last_at: float | None
    complete: bool


class SmtpSink:
    """``<sink> -c -M expected`` on 127.0.0.1: counts messages, exits after the last.

    ``program`` is a path from :func:`sink_program`; Postfix's ``smtp-sink`` when omitted.
    """

    def __init__(
        self,
        expected: int,
        *,
        port: int | None = None,
        backlog: int = 1024,
        program: str | None = None,
    ) -> None:
        self.expected = expected
        self.program = program or tool_path(SMTP_SINK) or SMTP_SINK
        self.port = port or free_port()
        self.backlog = backlog
        self.received = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._tail = b""
        self._done = threading.Event()
        # A running total can be waited for: the time it was reached is recorded.
        self._target = 0
        self._target_at: float | None = None
        self._target_event = threading.Event()

    def start(self) -> SmtpSink:
        cmd = [self.program, "-c", "-M", str(self.expected)]
        user = unprivileged_user()
        if user:
            cmd += ["-u", user]
        cmd += [f"127.0.0.1:{self.port}", str(self.backlog)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, name="smtp-sink-reader", daemon=True)
        self._reader.start()
        wait_for_port("127.0.0.1", self.port, 10, alive=lambda: self._proc.poll() is None)
        # The probe connection above counts as a session, not as a message.
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            now = time.perf_counter()
            counts = _COUNTER.findall(chunk)
            if counts:
                received = int(counts[-1])
                if received > self.received:
                    if self.first_at is None:
                        self.first_at = now
                    self.received, self.last_at = received, now
                    if self._target and received >= self._target and self._target_at is None:
                        self._target_at = now
                        self._target_event.set()
            self._tail = (self._tail + chunk)[-2000:]
            time.sleep(READ_PAUSE)
        self._done.set()

    def expect(self, more: int) -> int:
        """Arm a wait for ``more`` messages beyond those received so far; returns the total
        :meth:`wait_total` will wait for."""
        self._target_event.clear()
        self._target_at = None
        self._target = self.received + more
        return self._target

    def wait_total(self, timeout: float) -> float | None:
        """Wait until the armed total has been received; when it was, or None on timeout."""
        if not self._target_event.wait(timeout):
            return None
        return self._target_at

    def wait(self, timeout: float) -> SinkResult:
        """Wait until all expected messages arrived (the sink exits) or ``timeout``."""
        self._done.wait(timeout)
        return self.result()

    def result(self) -> SinkResult:
        return SinkResult(
            self.expected,
            self.received,
            self.first_at,
            self.last_at,
            self.received >= self.expected,
        )

    def output_tail(self) -> str:
        return self._tail.replace(b"\r", b"\n").decode("ascii", "replace")[-400:]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------- the source


@dataclass
class SourceResult:
    started: float
    finished: float
    returncode: int
    stderr: str

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass
class SmtpSource:
    """``smtp-source``: ``sessions`` parallel connections, each sending messages until
    ``count`` are sent (``-d``: connections are reused, as bulk injectors do), every
    recipient distinct (``-N``), the message taken from ``message_file``."""

    port: int
    count: int
    sessions: int
    message_file: Path
    host: str = "127.0.0.1"
    extra: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        return [
            tool_path(SMTP_SOURCE) or SMTP_SOURCE,
            "-d",
            "-N",
            "-s",
            str(self.sessions),
            "-m",
            str(self.count),
            "-F",
            str(self.message_file),
            "-f",
            SENDER,
            "-t",
            RECIPIENT,
            "-M",
            "injector.bench.example",
            *self.extra,
            f"{self.host}:{self.port}",
        ]

    def run(self, timeout: float) -> SourceResult:
        started = time.perf_counter()
        proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        finished = time.perf_counter()
        return SourceResult(
            started, finished, proc.returncode, err.decode("utf-8", "replace")[-800:]
        )


# ----------------------------------------------------------------------------- HTTP inject


@dataclass
class HttpInjectResult:
    requests: int
    recipients: int
    accepted: int
    failed: int
    errors: list[str]
    started: float
    finished: float


async def http_inject(
    url: str,
    *,
    recipients: int,
    per_request: int,
    concurrency: int,
    content: bytes,
) -> HttpInjectResult:
    """POST ``/api/inject/v1`` requests (KumoMTA's format), ``per_request`` recipients each,
    ``concurrency`` requests in flight; counts ``success_count``/``fail_count``."""
    import asyncio

    import aiohttp

    text = content.decode("utf-8", "replace").replace("\n", "\r\n")
    batches = [
        [{"email": f"{n}{RECIPIENT}"} for n in range(start, min(start + per_request, recipients))]
        for start in range(0, recipients, per_request)
    ]
    result = HttpInjectResult(len(batches), recipients, 0, 0, [], time.perf_counter(), 0.0)
    queue: asyncio.Queue[list[dict[str, str]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            body = {"envelope_sender": SENDER, "content": text, "recipients": batch}
            try:
                async with session.post(url, json=body) as response:
                    payload = await response.json(content_type=None)
                    if response.status != 200:
                        result.failed += len(batch)
                        result.errors.append(f"HTTP {response.status}: {str(payload)[:200]}")
                        continue
                    result.accepted += int(payload.get("success_count", 0))
                    result.failed += int(payload.get("fail_count", 0))
            except Exception as exc:
                result.failed += len(batch)
                result.errors.append(f"{type(exc).__name__}: {exc}")

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    result.finished = time.perf_counter()
    return result
