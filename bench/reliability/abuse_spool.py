"""Corrupt spool records: meta records recovery must quarantine."""

from __future__ import annotations

import secrets
from typing import Any


def new_id() -> bytes:
    """A fresh spool key (32 hex digits, as kumocore's message ids)."""
    return secrets.token_hex(16).encode()


def meta_record(to: str, **changes: Any) -> bytes:
    """A meta record as the spool writes it, with ``changes`` applied (None deletes a key)."""
    import orjson

    from kumocore.mail.message import Message

    record = orjson.loads(Message("a@src.test", to, b"Subject: x\r\n\r\nbody\r\n").meta_bytes())
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return bytes(orjson.dumps(record))


def undecodable_records() -> dict[str, bytes]:
    """Meta records recovery cannot decode: each must be logged and quarantined."""
    return {
        "binary garbage": b"\x00\xff\xfe garbage \x00",
        "JSON array": b"[1, 2, 3]",
        "JSON string": b'"hello"',
        "empty": b"",
        "wrong version": meta_record("x@crash.test", v=99),
        "no recipient": meta_record("x@crash.test", recipient=None),
        "recipient is a number": meta_record("x@crash.test", recipient=123),
        "recipient is not an address": meta_record("x@crash.test", recipient="not an address"),
        "created is a string": meta_record("x@crash.test", created="yesterday"),
        "meta is a list": meta_record("x@crash.test", meta=[1, 2]),
        "num_attempts is a float": meta_record("x@crash.test", num_attempts=1.5),
        "truncated JSON": meta_record("x@crash.test")[:-7],
        "1 MB of garbage": secrets.token_bytes(1 << 20),
    }
