"""``POST /publish_log_v1``'s body, one record at a time.

A body is one KumoMTA log record or an array of them, up to the listener's
``request_body_limit`` (16 MiB on ``--listen``). Decoded whole and then matched in one
go, a full body held the event loop for seconds (60,000 records: a 3.4 s stall), and
every other client of the service — health checks, subscribers, other publishers —
waited that long. Here each array element is decoded on its own (``json``'s
``raw_decode``, which reads one value and says where it ended), matched and recorded
before the next, and the loop is handed back every :data:`SLICE` seconds. At most
:data:`AT_ONCE` large bodies are worked on together, so many publishers' slices do not
add up to a stall either; the others wait their turn (their publisher waits for the
answer, as it does for KumoMTA's daemon when its backlog is full).

What is left in one go is one element's decoding: bounded by the body limit (a 2 MiB
record takes about 35 ms; a single 16 MiB one about 0.3 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from kumocore.node.stepwise import Slices

if TYPE_CHECKING:
    from kumocore.tsa.engine import TsaEngine

#: Longest run of decoding and matching before the loop is handed back (seconds).
SLICE = 0.005
#: Bodies over :data:`SMALL` bytes decoded and matched at the same time.
AT_ONCE = 2
SMALL = 16 * 1024

_SPACE = re.compile(r"[ \t\n\r]*")


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")  # json accepts NaN and Infinity; JSON does not


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


class BodyError(ValueError):
    """The body is not JSON (the text says where)."""


def _value(text: str, at: int) -> tuple[Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, at)
    except RecursionError:
        raise BodyError(f"nested too deeply at char {at}") from None
    except ValueError as exc:
        raise BodyError(str(exc)) from None
    try:
        # json decodes "\ud800" to a lone surrogate, which is not text: orjson (the
        # state file, the admin answers) would refuse it later, far from here.
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise BodyError(f"the value at char {at} is not text: {exc}") from None
    return value, end


def _space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match is not None else at


def records(text: str) -> Iterator[Any]:
    """The values of a JSON array, one by one as they are decoded (or the one value of a
    body that is not an array). Raises :class:`BodyError` where the text stops being JSON:
    the values before it have been given out already."""
    at = _space(text, 0)
    if not text.startswith("[", at):
        value, at = _value(text, at)
        if _space(text, at) != len(text):
            raise BodyError(f"extra data after the value at char {at}")
        yield value
        return
    at = _space(text, at + 1)
    if text.startswith("]", at):
        at = _space(text, at + 1)
    else:
        while True:
            value, at = _value(text, at)
            yield value
            at = _space(text, at)
            if text.startswith(",", at):
                at = _space(text, at + 1)
            elif text.startswith("]", at):
                at = _space(text, at + 1)
                break
            else:
                raise BodyError(f"expected ',' or ']' at char {at}")
    if at != len(text):
        raise BodyError(f"extra data after the array at char {at}")


class Publisher:
    """Feeds bodies to the engine, a slice at a time, :data:`AT_ONCE` at a time."""

    def __init__(self) -> None:
        self._turns = asyncio.Semaphore(AT_ONCE)

    async def publish(self, engine: TsaEngine, raw: bytes) -> str | None:
        """Observe every record of ``raw``; the error of the first bad one (the records
        before it are observed), else None."""
        # A body of a few records (KumoMTA publishes one per POST) is done within a
        # slice or two: it does not wait for a turn behind the big ones.
        async with self._turns if len(raw) > SMALL else contextlib.nullcontext():
            try:
                text = raw.decode()
            except UnicodeDecodeError as exc:
                return f"request body is not JSON: not UTF-8 at byte {exc.start}"
            slices = Slices(SLICE)
            try:
                for n, record in enumerate(records(text)):
                    if not isinstance(record, dict) or not await engine.consider_json(record):
                        return (f"record {n}: expected a log record object with a "
                                "'recipient' address")  # fmt: skip
                    await slices.pause()
            except BodyError as exc:
                return f"request body is not JSON: {exc}"
            return None
