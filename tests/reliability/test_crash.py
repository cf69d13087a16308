"""Crash safety (issue 9 part 1, peers.md §6 tests 14-15): a 250 survives kill -9.

The end-to-end test kills a real ``kumocore serve`` with SIGKILL under load a few times
(``make reliability`` does it at least 20 times) and accounts for every message that got
250: delivered at the sink, or logged Bounce/Expiration. Duplicates are allowed
(at-least-once) and counted.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.reliability.abuse import probe, wait_until
from bench.reliability.crash import run_crash_rounds
from kumocore.logs.reader import iter_records
from kumocore.testing.dns import TestDnsServer
from kumocore.testing.smtp_sink import RecordingSink
from tests.queue.harness import Bench, RecordingLogSink, ShapingPolicy
from tests.reliability.conftest import StartKumo, unique


@pytest.mark.slow
@pytest.mark.serial  # at least 100 messages in its four rounds: not with other workers
async def test_every_message_acknowledged_with_250_is_delivered_after_kill_9() -> None:
    # Bounces included: a bounced message leaves the spool only after its Bounce record
    # reached the log sinks, so a kill in between cannot lose it.
    report = await run_crash_rounds(
        rounds=4,
        workers=6,
        min_up=0.3,
        max_up=0.8,
        permfail=0.1,
        tempfail=0.1,
        settle_timeout=30,
        seed=4,
    )
    summary = report.summary()
    assert report.kills == 4, summary
    assert report.accounting is not None and report.accounting.accepted > 100, summary
    assert report.lost == 0, summary
    # At-least-once: a kill between a remote 250 and the spool delete redelivers. With a
    # kill every 0.3-0.8 s this storm is far harsher than real life; loss must be zero,
    # duplicates only rare (the bench reports ~1% over 20 rounds).
    assert report.accounting.duplicated <= max(10, report.accounting.accepted // 10), summary
    assert report.clean_exit_code == 0, summary


async def test_a_bounced_message_stays_spooled_until_its_bounce_record_is_written() -> None:
    gate = asyncio.Event()

    class GatedLogSink(RecordingLogSink):
        """A log sink that cannot write until the gate opens (a crash would come first)."""

        async def write_batch(self, records: object) -> None:
            await gate.wait()
            await super().write_batch(records)

    with TestDnsServer(
        {"example.com": {"MX": [(10, "mx.example.com")]}, "mx.example.com": {"A": ["127.0.0.1"]}}
    ) as dns:
        async with RecordingSink() as sink:
            logs = GatedLogSink()
            bench = Bench(ShapingPolicy(sink_port=sink.port), dns, sink, log_sink=logs)
            await bench.start()
            try:
                await bench.inject("permfail@example.com")
                await bench.wait_until(lambda: sink.state.attempts["permfail@example.com"] >= 1)
                await asyncio.sleep(0.3)  # the outcome is decided; the log is still pending
                assert logs.of_type("Bounce") == []
                # A kill -9 now must not lose the message: it has to still be spooled.
                assert bench.spooled() == 1
            finally:
                gate.set()
                await bench.stop()


@pytest.mark.slow
def test_graceful_stop_keeps_queued_messages_and_restart_delivers_them(
    start_kumo: StartKumo, world: object
) -> None:
    from bench.reliability.crash import World

    assert isinstance(world, World)
    world.dns.set_servfail(True, names=["crash.test"])  # park messages in the queue
    server = start_kumo()
    tags = [unique("graceful") for _ in range(5)]
    try:
        for tag in tags:
            assert probe(server.port, f"ok.{tag}@crash.test").code == 250
        assert server.terminate() == 0
        assert len(server.spooled_ids()) == 5
    finally:
        world.dns.set_servfail(False)
    server.start()
    assert wait_until(
        lambda: not world.sink.undelivered([f"ok.{t}@crash.test" for t in tags]), 15
    ), server.log_tail()
    records = list(iter_records(server.log_dir, types=["Reception"]))
    assert {r["recipient"] for r in records} >= {f"ok.{t}@crash.test" for t in tags}
