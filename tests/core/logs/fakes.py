"""Test doubles for log tests: a message, records, and sinks with controllable behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kumocore.logs.record import LogRecord, PeerAddress, RecordType
from kumocore.logs.record_builder import make_record
from kumocore.mail.response import Response

NODEID = "6c7a1e5e-0a2b-4f4d-9c53-3d2a8f1e0b7c"


@dataclass
class Address:
    email: str

    def __str__(self) -> str:
        return self.email


@dataclass
class FakeMessage:
    """Implements kumocore.logs.MessageLike; counts header reads."""

    id: str = "d7ef132b5d7711eda8c8001c42e1e7c4"
    sender: Address = field(default_factory=lambda: Address("sender@example.com"))
    recipient: Address = field(default_factory=lambda: Address("rcpt@example.net"))
    meta: dict[str, Any] = field(default_factory=dict)
    created: float = 1_700_000_000.25
    num_attempts: int = 0
    size: int = 1234
    headers: list[tuple[str, str]] = field(default_factory=list)
    header_reads: int = 0

    def get_first_named_header_value(self, name: str) -> str | None:
        self.header_reads += 1
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def get_all_headers(self) -> list[tuple[str, str]]:
        self.header_reads += 1
        return list(self.headers)


def record(
    type: RecordType | str = RecordType.Delivery, *, queue: str = "example.net",
    message: FakeMessage | None = None, when: float = 1_700_000_100.5, **kwargs: Any,
) -> LogRecord:
    kwargs.setdefault("peer_address", PeerAddress("mx.example.net", "127.0.0.2"))
    return make_record(
        type, message or FakeMessage(), queue=queue, site="src->mx.example.net@smtp_client",
        response=Response.parse(250, "2.0.0 OK", command="."),
        nodeid=NODEID, when=when, **kwargs)


class RecordingSink:
    """Keeps every batch; optionally slow (an Event gates each write) or failing."""

    def __init__(self, name: str = "recording", *, fail: bool = False, fail_times: int = 0,
                 gate: asyncio.Event | None = None, **attrs: Any) -> None:
        self.name = name
        self.batches: list[list[LogRecord]] = []
        self.fail = fail
        self.fail_times = fail_times  # fail this many calls, then succeed
        self.calls = 0
        self.gate = gate
        self.closed = 0
        for key, value in attrs.items():
            setattr(self, key, value)

    @property
    def records(self) -> list[LogRecord]:
        return [r for batch in self.batches for r in batch]

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.calls += 1
        if self.fail or self.calls <= self.fail_times:
            raise OSError(28, "No space left on device")
        self.batches.append(list(records))

    async def close(self) -> None:
        self.closed += 1
