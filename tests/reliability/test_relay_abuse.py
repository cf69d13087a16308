"""Relay abuse from an untrusted peer (127.0.0.5): nothing reaches a foreign domain.

peers.md §6 tests 1-2 and issue 9 part 3. The bench listener trusts only 127.0.0.1 and
has one ``relay_to`` domain, ``relay.test``; ``other.test`` is foreign. Its MX is the
recording sink, so a relayed message would show up there.
"""

from __future__ import annotations

import pytest

from bench.reliability.abuse import (
    RELAY_CASES,
    ROUTING_SYNTAX_CASES,
    RelayCase,
    probe,
    try_relay,
    wait_until,
)
from bench.reliability.crash import FOREIGN_DOMAIN, KumoServer, World
from tests.reliability.conftest import unique

PLAIN_CASES = [c for c in RELAY_CASES if c.name not in ROUTING_SYNTAX_CASES]
ROUTING_CASES = [c for c in RELAY_CASES if c.name in ROUTING_SYNTAX_CASES]


@pytest.mark.parametrize("case", PLAIN_CASES, ids=lambda c: c.name)
def test_untrusted_peer_cannot_relay_and_relay_to_domain_still_accepts(
    kumo: KumoServer, case: RelayCase
) -> None:
    result = try_relay(kumo.port, case)
    assert not result.error, result.error
    if case.accept:
        assert result.accepted, f"{case.recipient}: {result.rcpt} / {result.final}"
    else:
        assert result.refused_5xx, f"{case.recipient} was not refused: {result.rcpt}"
        assert result.rcpt is not None and result.rcpt.code in (550, 553, 501), result.rcpt


@pytest.mark.parametrize("case", ROUTING_CASES, ids=lambda c: c.name)
def test_untrusted_peer_gets_5xx_for_routing_syntax_in_the_local_part(
    kumo: KumoServer, case: RelayCase
) -> None:
    result = try_relay(kumo.port, case)
    assert result.refused_5xx, f"{case.recipient}: {result.rcpt} / {result.final}"


def test_routing_syntax_is_never_interpreted_by_kumocore(kumo: KumoServer, world: World) -> None:
    """Whatever the RCPT reply, a %-hack/bang/quoted recipient is delivered (if at all)
    to the relay_to domain's MX with the local part untouched, never to other.test."""
    for case in ROUTING_CASES:
        try_relay(kumo.port, case)
    assert wait_until(lambda: probe(kumo.port, f"ok.{unique('rr')}@crash.test").code == 250, 5)
    delivered = world.sink.recipients()
    for recipient in delivered:
        assert not recipient.endswith("@" + FOREIGN_DOMAIN), recipient
        assert not recipient.endswith("@" + FOREIGN_DOMAIN + "."), recipient


def test_nothing_was_ever_relayed_to_the_foreign_domain(kumo: KumoServer, world: World) -> None:
    for case in PLAIN_CASES:
        try_relay(kumo.port, case)
    tag = unique("relay-probe")
    assert probe(kumo.port, f"ok.{tag}@crash.test").code == 250
    assert wait_until(lambda: world.sink.recipients()[f"ok.{tag}@crash.test"] == 1, 10)
    foreign = [r for r in world.sink.recipients() if FOREIGN_DOMAIN in r.split("@")[-1]]
    assert foreign == []
