"""Batches against a hostile MX that refuses every recipient after the first of a
transaction "for their number" (``452 4.5.3``, or a bare ``452``). What is bounded: the
transactions a message gets before it waits for its retry; each recipient delivered
once; mail to another destination goes on meanwhile (its delivery latency, the event
loop's longest stall); and what the path remembers of a batch (BatchMemory) once it is
sent to wait between two transactions, whatever sends it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore import hookimpl
from kumocore.config import EgressPathConfig
from kumocore.queue.admin import parse_rule
from kumocore.queue.path import EgressPath
from tests.queue.harness import ZONES, Bench, ShapingPolicy
from tests.queue.test_batch_delivery import inject
from tests.support.rcpt_sink import RcptSink, _Session
from tests.support.ticker import LoopTicker

TOO_MANY = "452 4.5.3 too many recipients"


class _ByPosition(_Session):
    """Replies by the recipient's position in its transaction (the sink's ``first`` to
    the first RCPT, ``rest`` to every later one; None: accepted)."""

    position = 0

    def rcpt(self, recipient: str) -> str:
        if self.sender is None:
            return "503 5.5.1 MAIL first"
        assert isinstance(self.sink, _PositionSink)
        chosen = self.sink.first if self.position == 0 else self.sink.rest
        self.position += 1
        if chosen is not None:
            return chosen
        self.accepted.append(recipient)
        return "250 2.1.5 recipient ok"

    async def reply(self, verb: str, text: str) -> str:
        assert isinstance(self.sink, _PositionSink)
        if verb in ("MAIL", "RSET"):
            self.position = 0
        if verb == "MAIL" and self.sink.on_mail is not None:
            self.sink.on_mail()
        return await super().reply(verb, text)


@dataclass
class _PositionSink(RcptSink):
    first: str | None = None
    rest: str | None = TOO_MANY
    #: The connections (by number, from 1) greeted with a 421 and closed.
    busy: set[int] = field(default_factory=set)
    on_mail: Callable[[], None] | None = None  # called as each MAIL FROM arrives

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        session = _ByPosition(self, self.connections, reader, writer)
        if self.connections in self.busy:
            writer.write(b"421 4.3.2 busy\r\n")
            writer.close()
            return
        try:
            writer.write(b"220 position-sink.test ESMTP\r\n")
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def rcpts_per_recipient(self) -> Counter[str]:
        return Counter(line.split(":", 1)[1].strip("<> ") for _, line in self.commands
                       if line.upper().startswith("RCPT"))


@dataclass
class _TwoDestinations(ShapingPolicy):
    """``example.com`` goes to the port in ``path``; ``fast.example`` to the sink."""

    @hookimpl
    def kumo_get_egress_path_config(self, domain: str) -> EgressPathConfig:
        options = {"prohibited_hosts": [], "idle_timeout": 0.2, "enable_tls": "Disabled"}
        if domain == "fast.example":
            return EgressPathConfig.from_options({**options, "smtp_port": self.sink_port})
        return EgressPathConfig.from_options({**options, **self.path})


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    zones = {**ZONES, "fast.example": {"MX": [(10, "fast.mx.test")]},
             "fast.mx.test": {"A": ["127.0.0.1"]}}
    with TestDnsServer(zones) as server:
        yield server


@pytest.fixture
async def bench_for(dns: TestDnsServer, sink: RecordingSink) -> AsyncIterator[Any]:
    benches: list[Bench] = []

    async def make(port: int, queue: dict[str, Any] | None = None, **path: Any) -> Bench:
        policy = _TwoDestinations(sink_port=sink.port, path={"smtp_port": port, **path},
                                  queue=queue or {"retry_interval": "1h"})
        bench = await Bench(policy, dns, sink).start()
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        await bench.stop()


def _recipients(message: int, count: int) -> list[str]:
    return [f"m{message}-r{n}@example.com" for n in range(count)]


def _paths(bench: Bench) -> list[EgressPath]:
    return [path for path in bench.queues.paths.values() if "example.com" in path.key.name]


async def _fast_latencies(bench: Bench, sink: RecordingSink, until: asyncio.Event) -> list[float]:
    """Send a message to ``fast.example`` every 50 ms until ``until``; each one's time
    from insertion to arrival at the sink."""
    latencies: list[float] = []
    while not until.is_set():
        count = len(sink.messages)
        started = time.monotonic()
        await bench.inject(f"x{len(latencies)}@fast.example")
        while len(sink.messages) == count:
            await asyncio.sleep(0.002)
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.05)
    return latencies


@pytest.mark.parametrize(("first", "rest"), [
    ("451 4.3.0 try later", TOO_MANY),
    ("452 try later", "452 try later"),  # bare: "too many" or a full mailbox
])
async def test_a_refused_first_recipient_and_too_many_after_it_end_each_batch_in_its_chunks(
    bench_for: Any, sink: RecordingSink, first: str, rest: str
) -> None:
    # 60 messages of 300 recipients: the first RCPT of every transaction refused, each
    # one after it refused "for their number". Each message gets its 3 chunks (100 a
    # transaction), then waits for its retry: 180 transactions in all, never a loop;
    # other mail flows meanwhile.
    messages, size = 60, 300
    async with _PositionSink(first=first, rest=rest) as mx:
        bench = await bench_for(mx.port, connection_limit=4)
        done = asyncio.Event()
        async with LoopTicker() as ticker:
            fast = asyncio.create_task(_fast_latencies(bench, sink, done))
            sent = []
            for n in range(messages):
                sent.append(await inject(bench, _recipients(n, size)))
                await asyncio.sleep(0)  # the injection is the test's, not the code's
            await bench.wait_until(lambda: all(m.num_attempts == 1 for m in sent), 60)
            await asyncio.sleep(0.5)  # nothing more goes out before the retry
            done.set()
            latencies = await fast
        assert mx.verbs().count("MAIL") == messages * 3
        assert set(mx.rcpts_per_recipient().values()) == {1}  # each recipient sent once
        assert all(len(path.batch_memory) == 0 for path in _paths(bench))
        assert mx.transactions == []
        assert all(len(m.recipients) == size for m in sent)
    assert max(latencies) < 0.5 and len(latencies) >= 5, latencies
    assert ticker.longest < 0.1, ticker.longest


async def test_one_recipient_taken_per_transaction_delivers_each_once_in_as_many_transactions(
    bench_for: Any,
) -> None:
    # The MX takes one recipient a transaction: 120 transactions for 120 recipients
    # (KumoMTA's behaviour), each recipient delivered once and logged once.
    async with _PositionSink() as mx:
        bench = await bench_for(mx.port)
        everyone = _recipients(0, 120)
        await inject(bench, everyone)
        await bench.wait_for_records("Delivery", 120, timeout=30)
        await bench.wait_until(lambda: bench.spooled() == 0)
        delivered = [name for t in mx.transactions for name in t.recipients]
        assert sorted(delivered) == sorted(everyone)
        assert mx.verbs().count("MAIL") == 120
        records = bench.log_sink.of_type("Delivery")
        assert sorted(str(r["recipient"]) for r in records) == sorted(everyone)
        assert bench.log_sink.of_type("TransientFailure") == []


async def test_a_batch_that_waited_between_its_transactions_starts_its_retry_afresh(
    bench_for: Any,
) -> None:
    # 300 recipients, each refused (451). The first chunk goes out; the connection for
    # the second is refused (a 421 greeting on both MX hosts): the message waits for its
    # retry. The retry sends all three chunks again, the first one included.
    later = "451 4.3.0 try later"
    async with _PositionSink(first=later, rest=later, busy={2, 3}) as mx:
        bench = await bench_for(mx.port, queue={"retry_interval": "1s",
                                                "max_retry_interval": "1h"},
                                max_deliveries_per_connection=1)
        message = await inject(bench, _recipients(0, 300))
        await bench.wait_until(lambda: message.num_attempts == 1)
        (path,) = _paths(bench)
        assert len(path.batch_memory) == 0  # it waits: nothing kept of it meanwhile
        await bench.wait_until(lambda: message.num_attempts == 2, 15)
        assert mx.connections == 6
        assert mx.verbs().count("MAIL") == 1 + 3
        # The first chunk twice (before and in the retry), the others once.
        assert Counter(mx.rcpts_per_recipient().values()) == {2: 100, 1: 200}




async def test_batches_a_failed_connection_sends_to_wait_are_forgotten_by_their_path(
    bench_for: Any,
) -> None:
    # Two batches each get their first transaction, on a connection each; every later
    # connection is refused. One message gets the failed round's TransientFailure, the
    # other is delayed with the whole ready queue (consecutive failures past 0): the
    # path keeps nothing of either while they wait.
    later = "451 4.3.0 try later"
    async with _PositionSink(first=later, rest=later, busy=set(range(3, 30))) as mx:
        bench = await bench_for(mx.port, connection_limit=2, max_deliveries_per_connection=1,
                                consecutive_connection_failures_before_delay=0)
        sent = [await inject(bench, _recipients(n, 300)) for n in range(2)]
        await bench.wait_until(lambda: all(m.num_attempts == 1 for m in sent))
        assert mx.verbs().count("MAIL") == 2
        (path,) = _paths(bench)
        assert len(path.batch_memory) == 0


async def test_a_batch_its_queue_suspension_defers_between_transactions_is_forgotten(
    bench_for: Any,
) -> None:
    # An operator suspends the queue while the first transaction runs: the message is
    # deferred as the session takes it for the next one, and the path keeps nothing of it.
    later = "451 4.3.0 try later"
    async with _PositionSink(first=later, rest=later) as mx:
        bench = await bench_for(mx.port)
        rule = parse_rule({"domain": "example.com", "reason": "pause", "duration": "1h"})
        mx.on_mail = lambda: bench.queues.add_suspension(rule) and None
        message = await inject(bench, _recipients(0, 300))
        await bench.wait_until(lambda: message.num_attempts == 1)
        assert mx.verbs().count("MAIL") == 1
        (path,) = _paths(bench)
        assert len(path.batch_memory) == 0


async def test_a_batch_an_operator_abort_gives_back_between_transactions_is_forgotten(
    bench_for: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not KumoMTA's 0 s jitter (1 in 60): then the message goes again at once, unrecorded.
    monkeypatch.setattr("kumocore.queue.delays.drop_delay", lambda: 7)
    # abort-ready-q-conn during the second transaction: the message goes back to its
    # scheduled queue (no attempt counted) and the path keeps nothing of its first one.
    later = "451 4.3.0 try later"
    async with _PositionSink(first=later, rest=later) as mx:
        bench = await bench_for(mx.port)
        message = await inject(bench, _recipients(0, 300))

        def abort_at_the_second() -> None:
            if mx.verbs().count("MAIL") == 2:
                for path in _paths(bench):
                    for dispatcher in list(path.dispatchers):
                        path.dispatchers.abort(dispatcher.session_id)

        mx.on_mail = abort_at_the_second
        await bench.wait_for_records("Delayed", 1)
        (path,) = _paths(bench)
        assert message.num_attempts == 0 and mx.verbs().count("MAIL") == 2
        assert len(path.batch_memory) == 0
