"""``refresh_strategy``: how long kumocore keeps a queue or egress path configuration a
handler returned before asking the policy again ('Ttl': ``refresh_interval``; 'Epoch':
until the configuration epoch changes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kumocore import hookimpl
from kumocore.config import EgressPathConfig, QueueConfig
from kumocore.mail.message import Message
from kumocore.policy.refresh import Freshness
from tests.plugins.lua_policy.support import Recorder, make_runtime, write
from tests.queue.harness import Bench, ShapingPolicy
from tests.support.wiring import wire


def test_a_ttl_answer_is_due_once_its_refresh_interval_has_passed() -> None:
    config = QueueConfig.from_options({"refresh_interval": "10s"})
    stamp = Freshness(epoch=0, loaded_at=100.0)
    assert not stamp.due(config, lambda: 0, now=109.0)
    assert stamp.due(config, lambda: 0, now=111.0)
    # the epoch does not matter to a 'Ttl' answer
    assert not stamp.due(config, lambda: 7, now=105.0)


def test_an_epoch_answer_is_due_only_when_the_epoch_changes_however_old_it_is() -> None:
    config = EgressPathConfig.from_options({"refresh_strategy": "Epoch", "refresh_interval": "1s"})
    stamp = Freshness.now(config, lambda: 3)
    assert not stamp.due(config, lambda: 3, now=stamp.loaded_at + 10**6)
    assert stamp.due(config, lambda: 4)


@dataclass
class CountingPolicy(ShapingPolicy):
    """Counts path configuration lookups and provides a configuration epoch it controls."""

    lookups: int = 0
    epoch: list[int] = field(default_factory=lambda: [0])

    @hookimpl
    def kumo_get_egress_path_config(self, domain: str) -> EgressPathConfig:
        self.lookups += 1
        return super().kumo_get_egress_path_config(domain)

    @hookimpl
    def kumo_register_config_epoch(self) -> Any:
        return lambda: self.epoch[0]


async def _deliver(bench: Bench, count: int) -> None:
    for _ in range(count):
        await bench.inject("user@example.com")
        delivered = len(bench.log_sink.of_type("Delivery")) + 1
        await bench.wait_until(lambda n=delivered: len(bench.log_sink.of_type("Delivery")) >= n)


async def _bench(dns: Any, sink: Any, path: dict[str, Any]) -> tuple[Bench, CountingPolicy]:
    policy = CountingPolicy(sink_port=sink.port, path=path)
    return await Bench(policy, dns, sink).start(), policy


async def test_an_epoch_path_configuration_is_kept_until_the_epoch_changes(
    dns: Any, sink: Any
) -> None:
    bench, policy = await _bench(dns, sink, {"refresh_strategy": "Epoch",
                                             "refresh_interval": "0s"})
    try:
        await _deliver(bench, 3)
        assert policy.lookups == 1
        policy.epoch[0] += 1
        await _deliver(bench, 2)
        assert policy.lookups == 2
    finally:
        await bench.stop()


async def test_a_ttl_path_configuration_is_asked_for_again_after_its_interval(
    dns: Any, sink: Any
) -> None:
    bench, policy = await _bench(dns, sink, {"refresh_interval": "0s"})
    try:
        await _deliver(bench, 3)
        assert policy.lookups >= 3
    finally:
        await bench.stop()


QUEUE_POLICY = """\
    local kumo = require 'kumo'
    kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
      kumo.test.mark(domain)
      return kumo.make_queue_config { refresh_strategy = '{strategy}', refresh_interval = '0s' }
    end)
"""


async def _queue_lookups(tmp_path: Path, strategy: str, bump_after: int) -> list[Any]:
    recorder = Recorder()
    runtime = make_runtime(recorder)
    await runtime.load(write(tmp_path, "policy.lua", QUEUE_POLICY.replace("{strategy}", strategy)))
    try:
        intake = wire(runtime).intake
        for index in range(4):
            if index == bump_after:
                runtime.kumo.bump_config_epoch()
            name, config = await intake.resolve_queue_config(
                Message("a@src.test", "b@example.com", b"Subject: x\r\n\r\nx\r\n"))
            assert name == "example.com" and config is not None
        return recorder.marks
    finally:
        await runtime.hooks.shutdown()


async def test_a_lua_epoch_queue_configuration_is_asked_for_again_after_bump_config_epoch(
    tmp_path: Path,
) -> None:
    assert await _queue_lookups(tmp_path, "Epoch", bump_after=2) == ["example.com"] * 2


async def test_a_lua_ttl_queue_configuration_is_asked_for_every_time_its_interval_is_zero(
    tmp_path: Path,
) -> None:
    assert await _queue_lookups(tmp_path, "Ttl", bump_after=99) == ["example.com"] * 4
