"""Micro-benchmark: what ``filter_event`` costs per log record.

``python -m bench.micro.log_filter_event [--records 20000] [--rounds 5]``

Two figures, medians of ``--rounds``:

* ``submit``: :meth:`LogDispatcher.submit` per record with one sink: the current
  dispatcher with a sink without ``filter_event`` and with a sink that has one (the lane
  then also keeps the message), and, given ``--old FILE``, a copy of ``dispatch.py`` from
  before ``filter_event`` (e.g. ``git show <commit>:kumocore/logs/dispatch.py > FILE``);
* ``drain``: records submitted and written (to a sink that keeps nothing) per record, for
  a sink without ``filter_event`` and one whose event is a real Lua handler
  (``return msg:get_meta 'reception_protocol' == 'ESMTP'``), i.e. the Lua call's price.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from kumocore.logs import LogDispatcher, LogRecord, make_record
from kumocore.logs.filter_event import LogFilter, policy_log_filter
from kumocore.mail.message import Message
from kumocore.mail.response import Response

POLICY = """
local kumo = require 'kumo'
kumo.on('only_esmtp', function(msg)
  return msg:get_meta 'reception_protocol' == 'ESMTP'
end)
"""


class NullSink:
    def __init__(self, name: str, filter_event: str | None = None) -> None:
        self.name = name
        self.filter_event = filter_event
        self.written = 0

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        self.written += len(records)

    async def close(self) -> None:
        return None


def messages(count: int) -> list[Message]:
    out = []
    for i in range(count):
        message = Message("a@example.org", f"r{i}@example.com", b"Subject: x\r\n\r\nbody\r\n")
        message.set_meta("reception_protocol", "ESMTP" if i % 2 else "HTTP")
        out.append(message)
    return out


def record_of(message: Message) -> LogRecord:
    return make_record(
        "Delivery", message, queue="example.com", nodeid="n", response=Response(250, "ok")
    )


def load_old(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("old_dispatch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def submit_cost(
    make: Any,
    pairs: list[tuple[LogRecord, Message]],
    pass_message: bool,
) -> float:
    dispatcher = make()
    started = time.perf_counter()
    if pass_message:
        for record, message in pairs:
            dispatcher.submit(record, message)
    else:
        for record, _ in pairs:
            dispatcher.submit(record)
    return (time.perf_counter() - started) / len(pairs) * 1e6


async def drain_cost(
    sink: NullSink, log_filter: LogFilter, pairs: list[tuple[LogRecord, Message]]
) -> float:
    dispatcher = LogDispatcher([sink], batch_latency=0, log_filter=log_filter)
    started = time.perf_counter()
    await dispatcher.start()
    for record, message in pairs:
        dispatcher.submit(record, message)
    await dispatcher.close(timeout=600)
    return (time.perf_counter() - started) / len(pairs) * 1e6


async def main_async(count: int, rounds: int, old: Path | None) -> None:
    from kumocore.node.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.lua"
        policy.write_text(POLICY)
        runtime = Runtime(load_entrypoints=True)
        await runtime.load(str(policy))
        log_filter = policy_log_filter(runtime.pm)
        msgs = messages(count)
        pairs = [(record_of(m), m) for m in msgs]

        async def never(event: str, message: Any) -> bool:
            raise AssertionError("a sink without filter_event was asked")

        makers: dict[str, tuple[Any, bool]] = {
            "new, no filter_event": (lambda: LogDispatcher([NullSink("s")]), True),
            "new, filter_event": (
                lambda: LogDispatcher([NullSink("s", "only_esmtp")], log_filter=never),
                True,
            ),
        }
        if old is not None:
            old_module = load_old(old)
            makers = {"old": (lambda: old_module.LogDispatcher([NullSink("s")]), False), **makers}
        submit: dict[str, list[float]] = {name: [] for name in makers}
        drain: dict[str, list[float]] = {"no filter_event": [], "filter_event (Lua)": []}
        for _ in range(rounds):
            for name, (make, pass_message) in makers.items():
                submit[name].append(await submit_cost(make, pairs, pass_message))
            drain["no filter_event"].append(await drain_cost(NullSink("s"), never, pairs))
            sink = NullSink("s", "only_esmtp")
            drain["filter_event (Lua)"].append(await drain_cost(sink, log_filter, pairs))
            assert sink.written == count // 2
        print(f"{count} records, median of {rounds} rounds, microseconds per record")
        for name, values in submit.items():
            print(f"  submit  {name:<24} {statistics.median(values):7.3f}")
        for name, values in drain.items():
            print(f"  drain   {name:<24} {statistics.median(values):7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--old",
        type=Path,
        default=None,
        help="a copy of the dispatcher before filter_event, to compare",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args.records, args.rounds, args.old))


if __name__ == "__main__":
    main()
