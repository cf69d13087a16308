"""``kumo.uuid.*``: Uuid objects with KumoMTA's fields, parsed or newly made (v1, v4, v6, v7)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError


class Uuid:
    """A UUID with KumoMTA's fields: ``hyphenated``, ``simple``, ``braced``, ``urn``, ``bytes``."""

    def __init__(self, value: uuid.UUID) -> None:
        self._uuid = value

    def __str__(self) -> str:
        return str(self._uuid)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Uuid) and other._uuid == self._uuid

    def __hash__(self) -> int:
        return hash(self._uuid)

    hyphenated = property(lambda self: str(self._uuid))
    simple = property(lambda self: self._uuid.hex)
    braced = property(lambda self: "{" + str(self._uuid) + "}")
    urn = property(lambda self: self._uuid.urn)
    bytes = property(lambda self: self._uuid.bytes)


def uuid_parse(text: str) -> Uuid:
    try:
        return Uuid(uuid.UUID(str(text)))
    except ValueError:
        raise ConfigError(f"kumo.uuid.parse: not a UUID: {text!r}") from None


def _with_version(value: int, version: int) -> uuid.UUID:
    value &= ~(0xF000 << 64)
    value |= version << 76
    value &= ~(0xC000 << 48)
    value |= 0x8000 << 48
    return uuid.UUID(int=value)


def new_v6() -> Uuid:
    """RFC 9562 v6: v1's timestamp reordered most significant first."""
    v1 = uuid.uuid1()
    ts = v1.time
    high = ((ts >> 12) << 16) | (0x6000 | (ts & 0x0FFF))
    return Uuid(uuid.UUID(int=(high << 64) | (v1.int & ((1 << 64) - 1))))


def new_v7() -> Uuid:
    """RFC 9562 v7: Unix milliseconds then random bits."""
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return Uuid(_with_version(value, 7))


def uuid_functions() -> dict[str, Callable[..., Any]]:
    return {
        "uuid.parse": uuid_parse,
        "uuid.new_v1": lambda: Uuid(uuid.uuid1()),
        "uuid.new_v4": lambda: Uuid(uuid.uuid4()),
        "uuid.new_v6": new_v6,
        "uuid.new_v7": new_v7,
    }
