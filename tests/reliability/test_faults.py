"""Redis and DNS faults (issue 9 part 5): while a service is down messages stay queued,
and they flow again when it returns; nothing accepted is lost.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.common.redis_server import RedisServer
from bench.reliability.abuse import probe, wait_until
from bench.reliability.crash import KumoServer, Ledger, World, load_worker
from kumocore.logs.reader import iter_records
from tests.reliability.conftest import StartKumo, unique


@pytest.fixture(scope="module")
def dns_kumo(start_module_kumo: StartKumo) -> KumoServer:
    return start_module_kumo(dns_timeout=0.3)


def fault_domain(world: World, tag: str) -> str:
    """A fresh domain (nothing cached) with a 1 s TTL, its MX on the sink."""
    domain = f"{tag}.dnsfault.test"
    world.dns.set_records(domain, "MX", [(10, "mx.fault.sink.test")], ttl=1)
    return domain


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["down", "servfail"])
def test_messages_wait_while_dns_fails_and_flow_when_it_returns(
    dns_kumo: KumoServer, world: World, fault: str
) -> None:
    domain = fault_domain(world, unique(fault))
    recipients = [f"ok.{n}@{domain}" for n in range(5)]
    if fault == "down":
        world.dns.down()
    else:
        world.dns.set_servfail(True)
    try:
        for rcpt in recipients:
            assert probe(dns_kumo.port, rcpt).code == 250  # reception needs no DNS

        def deferred() -> set[str]:
            return {
                r["recipient"] for r in iter_records(dns_kumo.log_dir, types=["TransientFailure"])
            }

        assert wait_until(lambda: set(recipients) <= deferred(), 10)
        assert not any(world.sink.recipients()[r] for r in recipients)
    finally:
        world.dns.up()
        world.dns.set_servfail(False)
    assert wait_until(lambda: all(world.sink.recipients()[r] == 1 for r in recipients), 15)
    bounced = {r["recipient"] for r in iter_records(dns_kumo.log_dir, types=["Bounce"])}
    assert not bounced & set(recipients)


@pytest.mark.slow
@pytest.mark.serial  # over 50 messages in 4 s: not with other workers
async def test_killing_redis_mid_run_loses_nothing_and_throttles_recover(
    start_kumo: StartKumo, world: World
) -> None:
    with RedisServer() as redis:
        server = start_kumo(
            redis=redis.url,
            log_level="info",
            path={"connection_limit": 3, "max_message_rate": "200/s"},
        )
        ledger = Ledger()
        tag = unique("redis")
        counter = iter(range(10**9))
        stop = asyncio.Event()

        def next_recipient() -> str:
            return f"ok.{tag}-{next(counter)}@crash.test"

        tasks = [
            asyncio.create_task(load_worker(server.port, ledger, next_recipient, stop, pause=0.01))
            for _ in range(3)
        ]
        await asyncio.sleep(1.0)
        redis.kill()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(redis.start)
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.wait(tasks, timeout=10)
        assert len(ledger.accepted) > 50 and not ledger.refused, ledger.refused
        delivered = await asyncio.to_thread(
            wait_until, lambda: all(world.sink.recipients()[r.lower()] for r in ledger.accepted), 20
        )
        missing = [r for r in ledger.accepted if not world.sink.recipients()[r.lower()]]
        assert delivered, f"{len(missing)} not delivered, e.g. {missing[:3]}"
        log = server.log_text()
        assert "redis throttles unreachable" in log, log[-2000:]
        assert "reachable again" in log, log[-2000:]
