"""The check that each side does what the comparison assumes: it signs, and it queues on disk.

Before the timed runs every side relays one sample message (marked with a unique
``X-Bench-Sample`` header) to ``sample@capture.example``, which every side routes to a
capture server instead of the sink. The capture server holds its reply to DATA: while the
side waits for that reply, the message can only be in the side's queue, so the harness
searches the side's queue directory on disk for the marker. Then the capture server
accepts the message and the harness verifies its DKIM signature with dkimpy against the
benchmark's public key (or checks that a side which must not sign did not).
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.perf.load import SENDER, SENDER_DOMAIN, free_port, make_message

SAMPLE_DOMAIN = "capture.example"
SAMPLE_RECIPIENT = f"sample@{SAMPLE_DOMAIN}"


@dataclass
class SampleCheck:
    side: str
    queued_on_disk: bool
    dkim_signatures: int
    dkim_valid: bool
    detail: str

    def problems(self, *, must_sign: bool) -> list[str]:
        found = []
        if not self.queued_on_disk:
            found.append(f"{self.side}: the sample was not found in its queue on disk")
        if must_sign and not self.dkim_valid:
            found.append(f"{self.side}: the sample's DKIM signature does not verify")
        if not must_sign and self.dkim_signatures:
            found.append(f"{self.side}: the sample is DKIM-signed, this side must not sign")
        return found


class CaptureServer:
    """An SMTP server (aiosmtpd, in a thread) that holds each DATA reply until released."""

    def __init__(self) -> None:
        self.port = free_port()
        self.holding = threading.Event()
        self.received = threading.Event()
        self.content = b""
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._controller: Any = None

    def __enter__(self) -> CaptureServer:
        from aiosmtpd.controller import Controller

        server = self

        class Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                server._loop = asyncio.get_running_loop()
                server._release = asyncio.Event()
                server.holding.set()
                await asyncio.wait_for(server._release.wait(), 60)
                server.content = bytes(envelope.original_content or envelope.content)
                server.received.set()
                return "250 2.0.0 captured"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
        self._controller.stop()

    def reset(self) -> None:
        self.holding.clear()
        self.received.clear()
        self.content = b""

    def release(self) -> None:
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)


def _on_disk(directories: list[Path], marker: bytes) -> bool:
    for directory in directories:
        for parent, _, files in os.walk(directory):
            for name in files:
                try:
                    if marker in Path(parent, name).read_bytes():
                        return True
                except OSError:  # a file renamed or removed meanwhile
                    continue
    return False


def check_side(
    side: str,
    port: int,
    queue_dirs: list[Path],
    capture: CaptureServer,
    dkim_public: str,
    timeout: float = 60,
) -> SampleCheck:
    """Relay one marked sample through ``side`` (listening on ``port``) and check it."""
    import dkim

    capture.reset()
    marker = f"{side}-{uuid.uuid4().hex}".encode()
    marked = b"X-Bench-Sample: " + marker + b"\nMIME-Version:"
    body = make_message(2048).replace(b"MIME-Version:", marked, 1)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
            client.sendmail(SENDER, [SAMPLE_RECIPIENT], body.replace(b"\n", b"\r\n"))
    except (OSError, smtplib.SMTPException) as exc:
        return SampleCheck(side, False, 0, False, f"the sample was refused: {exc}")
    if not capture.holding.wait(timeout):
        return SampleCheck(side, False, 0, False, "the sample never reached the capture server")
    queued = _on_disk(queue_dirs, marker)
    capture.release()
    if not capture.received.wait(timeout):
        return SampleCheck(side, queued, 0, False, "the capture server never got the sample")
    content = capture.content
    signatures = content.count(b"\nDKIM-Signature:") + content.startswith(b"DKIM-Signature:")
    record = f"v=DKIM1; k=rsa; p={dkim_public}".encode()

    def dns(name: bytes | str, timeout: int = 5) -> bytes:
        text = name.decode() if isinstance(name, bytes) else name
        return record if text.rstrip(".") == f"bench._domainkey.{SENDER_DOMAIN}" else b""

    valid = bool(signatures) and bool(dkim.verify(content, dnsfunc=dns))
    tags = ""
    if signatures:
        import email

        signature = str(email.message_from_bytes(content)["DKIM-Signature"])
        fields: dict[str, str] = {}
        for part in "".join(signature.split()).split(";"):
            tag, _, value = part.partition("=")
            fields[tag] = value
        tags = " ".join(f"{tag}={fields.get(tag, '?')}" for tag in ("a", "c", "h"))
    signed = f"DKIM {'verifies' if valid else 'DOES NOT VERIFY'} ({tags})"
    detail = f"queued on disk: {'yes' if queued else 'NO'}; " + (
        signed if signatures else "not signed"
    )
    return SampleCheck(side, queued, signatures, valid, detail)
