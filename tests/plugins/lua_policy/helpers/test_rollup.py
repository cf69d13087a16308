"""``policy-extras.rollup`` in a real node: the queues its reroutes give, the ready queue
mail leaves through and the receiver it reaches, and what it does when DNS says no.

Every test runs a kumocore node (``kumocore.testing.Node``) resolving through the test DNS
server below and delivering to recording sinks on loopback addresses (``smtp_port`` of the
node's egress path is the sinks' port)."""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kumocore.testing import Node, RecordingSink, TestDnsServer

OLC = ".olc.protection.outlook.com."
SUFFIX_ROLLUP = f"rollup.reroute_based_on_mx_host_suffix(msg, {{ ['{OLC}'] = 'outlook.example' }})"
IP_ROLLUP = (
    "rollup.reroute_using_ip_rollup(msg, "
    "{ ['.mail.protection.outlook.com.'] = 'outlook.ip_rollup' })"
)

ZONES: dict[str, dict[str, Any]] = {
    # Suffix rollup: two domains, each with its own host under the shared suffix.
    "hotmail.example": {"MX": [(2, "hotmail-example.olc.protection.outlook.com")]},
    "outlook.example": {"MX": [(5, "outlook-example.olc.protection.outlook.com")]},
    "hotmail-example.olc.protection.outlook.com": {"A": ["127.0.0.1"]},
    "outlook-example.olc.protection.outlook.com": {"A": ["127.0.0.1"]},
    # One host under the suffix, one outside: not every host matches.
    "mixed.example": {
        "MX": [(5, "mixed-example.olc.protection.outlook.com"), (10, "backup.mixed.example")]
    },
    "mixed-example.olc.protection.outlook.com": {"A": ["127.0.0.1"]},
    "backup.mixed.example": {"A": ["127.0.0.1"]},
    # No MX at all: the domain itself is the (implicit) MX host.
    "direct.olc.protection.outlook.com": {"A": ["127.0.0.1"]},
    "nullmx.example": {"MX": [(0, ".")]},
    # IP rollup: both first MX hosts have the addresses of the sinks (listed in different
    # orders); bar's second host points at an address where nothing listens.
    "foo.example": {"MX": [(1, "foo-example.mail.protection.outlook.com")]},
    "bar.example": {
        "MX": [(1, "bar-example.mail.protection.outlook.com"), (20, "backup.bar.example")]
    },
    "foo-example.mail.protection.outlook.com": {"A": ["127.0.0.7", "127.0.0.8"]},
    "bar-example.mail.protection.outlook.com": {"A": ["127.0.0.8", "127.0.0.7"]},
    "backup.bar.example": {"A": ["127.0.0.9"]},
    # The first MX is outside the suffix, the second inside: the first alone decides.
    "second.example": {
        "MX": [(5, "mx.second.example"), (10, "second-example.mail.protection.outlook.com")]
    },
    "mx.second.example": {"A": ["127.0.0.1"]},
    "second-example.mail.protection.outlook.com": {"A": ["127.0.0.7"]},
    # An IPv6 address among the first host's.
    "six.example": {"MX": [(1, "six-example.mail.protection.outlook.com")]},
    "six-example.mail.protection.outlook.com": {"A": ["127.0.0.7"], "AAAA": ["::1"]},
    # Two hosts of the same (lowest) preference: both count, in name order.
    "pair.example": {
        "MX": [(1, "b-pair.mail.protection.outlook.com"), (1, "a-pair.mail.protection.outlook.com")]
    },
    "a-pair.mail.protection.outlook.com": {"A": ["127.0.0.8"]},
    "b-pair.mail.protection.outlook.com": {"A": ["127.0.0.7", "127.0.0.1"]},
    "half.example": {"MX": [(1, "half.mail.protection.outlook.com"), (1, "mx.half.example")]},
    "half.mail.protection.outlook.com": {"A": ["127.0.0.1"]},
    "mx.half.example": {"A": ["127.0.0.1"]},
    # The first MX host has no address record at all (NXDOMAIN).
    "lost.example": {"MX": [(1, "gone.mail.protection.outlook.com")]},
}

Start = Callable[[str], Awaitable[Node]]


def policy(reception: str) -> str:
    """A policy whose queue configuration applies the IP rollup, as KumoMTA's guide says."""
    return f"""
local kumo = require 'kumo'
local rollup = require 'policy-extras.rollup'

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  local params = {{}}
  rollup.apply_ip_rollup_to_queue_config(domain, routing_domain, params)
  return kumo.make_queue_config(params)
end)

kumo.on('smtp_server_message_received', function(msg)
  {reception}
end)
"""


@pytest.fixture
async def dns() -> AsyncIterator[TestDnsServer]:
    server = TestDnsServer(ZONES).start()
    yield server
    server.stop()


@pytest.fixture
async def sinks() -> AsyncIterator[dict[str, RecordingSink]]:
    """Sinks on 127.0.0.1, 127.0.0.7 and 127.0.0.8, all on one port."""
    first = await RecordingSink(host="127.0.0.1").start()
    started = {"127.0.0.1": first}
    for host in ("127.0.0.7", "127.0.0.8"):
        started[host] = await RecordingSink(host=host, port=first.port).start()
    yield started
    for sink in started.values():
        await sink.stop()


@pytest.fixture
async def start(
    make_node: Callable[..., Awaitable[Node]],
    dns: TestDnsServer,
    sinks: dict[str, RecordingSink],
) -> Start:
    async def start_with(reception: str) -> Node:
        return await make_node(policy(reception), dns=dns, sink=sinks["127.0.0.1"])

    return start_with


async def received_queue(node: Node, recipient: str) -> str:
    await node.send(recipients=recipient)
    (record,) = await node.wait_for("Reception", recipient=recipient)
    return str(record["queue"])


# ---------------------------------------------------------------- MX host suffix rollup


async def test_domains_whose_mx_hosts_share_the_suffix_leave_through_one_ready_queue(
    start: Start, sinks: dict[str, RecordingSink]
) -> None:
    node = await start(SUFFIX_ROLLUP)
    await node.send(recipients=["a@hotmail.example"])
    await node.send(recipients=["b@outlook.example"])
    deliveries = await node.wait_for("Delivery", count=2)
    queues = {d["recipient"]: d["queue"] for d in deliveries}
    # hotmail is routed via outlook; outlook itself is not rerouted to itself.
    assert queues == {
        "a@hotmail.example": "hotmail.example!outlook.example",
        "b@outlook.example": "outlook.example",
    }
    assert {d["site"] for d in deliveries} == {
        "unspecified->outlook-example.olc.protection.outlook.com@smtp_client"
    }
    assert sorted(m.recipient for m in sinks["127.0.0.1"].messages) == [
        "a@hotmail.example",
        "b@outlook.example",
    ]


async def test_a_domain_with_one_mx_host_outside_the_suffix_is_not_rerouted(
    start: Start,
) -> None:
    node = await start(SUFFIX_ROLLUP)
    assert await received_queue(node, "c@mixed.example") == "mixed.example"
    assert await received_queue(node, "c@hotmail.example") == "hotmail.example!outlook.example"


@pytest.mark.parametrize(
    "suffix",
    [
        ".protection.outlook.com",  # without the final dot that MX host names have
        ".PROTECTION.outlook.com.",  # host names are lower-case; the suffix is not folded
        "",  # an empty suffix matches nothing
    ],
)
async def test_a_suffix_is_compared_as_written(start: Start, suffix: str) -> None:
    # The suffix under test is the longer one, so it is tried first.
    node = await start(
        "rollup.reroute_based_on_mx_host_suffix(msg, "
        f"{{ ['{suffix}'] = 'wrong.example', ['.outlook.com.'] = 'outlook.example' }})"
    )
    assert await received_queue(node, "a@hotmail.example") == "hotmail.example!outlook.example"
    assert await received_queue(node, "a@mixed.example") == "mixed.example"


async def test_the_longest_matching_suffix_wins(start: Start) -> None:
    node = await start(
        "rollup.reroute_based_on_mx_host_suffix(msg, {"
        " ['.com.'] = 'any.example',"
        " ['.outlook.com.'] = 'outlook.example',"
        " ['.protection.outlook.com.'] = 'protected.example' })"
    )
    assert await received_queue(node, "a@hotmail.example") == "hotmail.example!protected.example"


async def test_a_domain_without_mx_records_is_matched_by_its_own_name(start: Start) -> None:
    node = await start(SUFFIX_ROLLUP)
    assert (
        await received_queue(node, "d@direct.olc.protection.outlook.com")
        == "direct.olc.protection.outlook.com!outlook.example"
    )


async def test_a_null_mx_domain_is_not_rerouted(start: Start) -> None:
    node = await start(SUFFIX_ROLLUP)
    assert await received_queue(node, "e@nullmx.example") == "nullmx.example"
    assert await received_queue(node, "e@hotmail.example") == "hotmail.example!outlook.example"


async def test_a_dns_failure_is_printed_and_the_message_keeps_its_queue(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    node = await start(SUFFIX_ROLLUP)
    assert await received_queue(node, "f@missing.example") == "missing.example"
    out = capsys.readouterr().out
    assert "while checking mx host pattern: " in out
    assert "missing.example" in out


async def test_mail_for_the_routing_domain_itself_is_not_rerouted_whatever_its_case(
    start: Start,
) -> None:
    node = await start(
        f"rollup.reroute_based_on_mx_host_suffix(msg, {{ ['{OLC}'] = 'Outlook.Example' }})"
    )
    assert await received_queue(node, "b@outlook.example") == "outlook.example"
    assert await received_queue(node, "b@hotmail.example") == "hotmail.example!Outlook.Example"


async def test_a_mapping_key_that_is_not_a_suffix_is_printed_and_changes_nothing(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    node = await start("rollup.reroute_based_on_mx_host_suffix(msg, { [1] = 'outlook.example' })")
    assert await received_queue(node, "a@hotmail.example") == "hotmail.example"
    out = capsys.readouterr().out
    assert "while checking mx host pattern: " in out
    assert "mapping keys must be MX host name suffixes (strings), got number" in out


async def test_suffix_rollup_replaces_an_earlier_routing_domain_but_not_a_queue(
    start: Start,
) -> None:
    node = await start(
        "if msg:recipient_list()[1].user == 'q' then msg:set_meta('queue', 'fixed.example') end\n"
        "  msg:set_meta('routing_domain', 'earlier.example')\n  " + SUFFIX_ROLLUP
    )
    assert await received_queue(node, "r@hotmail.example") == "hotmail.example!outlook.example"
    # The queue meta names the queue whatever routing_domain says, as in KumoMTA.
    assert await received_queue(node, "q@hotmail.example") == "fixed.example"


# ---------------------------------------------------------------- IP rollup


async def test_domains_whose_first_mx_has_the_same_addresses_share_an_mx_list_ready_queue(
    start: Start, sinks: dict[str, RecordingSink]
) -> None:
    node = await start(IP_ROLLUP)
    await node.send(recipients=["a@foo.example"])
    await node.send(recipients=["b@bar.example"])
    deliveries = await node.wait_for("Delivery", count=2)
    assert {d["recipient"]: d["queue"] for d in deliveries} == {
        "a@foo.example": "foo.example!outlook.ip_rollup",
        "b@bar.example": "bar.example!outlook.ip_rollup",
    }
    # The addresses of the first MX host only (not bar's backup at 127.0.0.9), sorted.
    assert {d["site"] for d in deliveries} == {
        "unspecified->mx_list:127.0.0.7,127.0.0.8@smtp_client"
    }
    # The first entry of the list is tried first.
    assert sorted(m.recipient for m in sinks["127.0.0.7"].messages) == [
        "a@foo.example",
        "b@bar.example",
    ]
    assert sinks["127.0.0.1"].messages == sinks["127.0.0.8"].messages == []
    assert {d["peer_address"]["addr"] for d in deliveries} == {"127.0.0.7"}


async def test_ipv6_addresses_join_the_mx_list_sorted_with_the_others(
    start: Start, sinks: dict[str, RecordingSink]
) -> None:
    node = await start(IP_ROLLUP)
    await node.send(recipients=["g@six.example"])
    (delivery,) = await node.wait_for("Delivery")
    assert delivery["site"] == "unspecified->mx_list:127.0.0.7,::1@smtp_client"
    assert [m.recipient for m in sinks["127.0.0.7"].messages] == ["g@six.example"]


async def test_only_the_most_preferred_mx_hosts_decide_an_ip_rollup(start: Start) -> None:
    node = await start(IP_ROLLUP)
    assert await received_queue(node, "h@second.example") == "second.example"
    assert await received_queue(node, "i@mixed.example") == "mixed.example"
    assert await received_queue(node, "h@nullmx.example") == "nullmx.example"
    assert await received_queue(node, "h@foo.example") == "foo.example!outlook.ip_rollup"


async def test_every_host_of_the_lowest_preference_must_match_and_gives_its_addresses(
    start: Start, sinks: dict[str, RecordingSink]
) -> None:
    node = await start(IP_ROLLUP)
    assert await received_queue(node, "s@half.example") == "half.example"
    await node.send(recipients="t@pair.example")
    (delivery,) = await node.wait_for("Delivery", recipient="t@pair.example")
    # Hosts in name order (a-pair, b-pair), each host's addresses sorted.
    assert delivery["queue"] == "pair.example!outlook.ip_rollup"
    assert delivery["site"] == "unspecified->mx_list:127.0.0.8,127.0.0.1,127.0.0.7@smtp_client"
    assert [m.recipient for m in sinks["127.0.0.8"].messages] == ["t@pair.example"]


async def test_no_ip_rollup_match_clears_an_earlier_routing_domain(start: Start) -> None:
    # KumoMTA sets routing_domain to the match, nil included.
    node = await start("msg:set_meta('routing_domain', 'earlier.example')\n  " + IP_ROLLUP)
    assert await received_queue(node, "j@hotmail.example") == "hotmail.example"


async def test_an_ip_rollup_dns_failure_is_printed_and_leaves_the_routing_domain(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    node = await start("msg:set_meta('routing_domain', 'earlier.example')\n  " + IP_ROLLUP)
    assert await received_queue(node, "k@missing.example") == "missing.example!earlier.example"
    assert "while checking ip_rollup: " in capsys.readouterr().out


async def test_queue_config_is_left_alone_for_other_routing_domains(start: Start) -> None:
    # outlook.example does not end in .ip_rollup: its MX site is used, not an mx_list.
    node = await start(
        "msg:set_meta('routing_domain', msg:recipient_list()[1].user == 'l'"
        " and 'outlook.example' or 'outlook.ip_rollup')"
    )
    await node.send(recipients=["l@foo.example"])
    await node.send(recipients=["m@foo.example"])
    deliveries = await node.wait_for("Delivery", count=2)
    outlook_site = "unspecified->outlook-example.olc.protection.outlook.com@smtp_client"
    assert {d["queue"]: d["site"] for d in deliveries} == {
        "foo.example!outlook.example": outlook_site,
        "foo.example!outlook.ip_rollup": "unspecified->mx_list:127.0.0.7,127.0.0.8@smtp_client",
    }


@pytest.mark.parametrize(
    "recipient",
    [
        "m@missing.example",  # the domain's MX lookup fails
        "n@lost.example",  # its first MX host has no address
    ],
)
async def test_a_dns_failure_in_the_queue_config_refuses_the_message(
    start: Start, recipient: str
) -> None:
    node = await start("msg:set_meta('routing_domain', 'outlook.ip_rollup')")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await node.send(recipients=recipient)
    # kumocore's reply when get_queue_config fails: the client tries again later.
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (421, b"4.3.0")
    assert node.logs("Reception") == []


async def test_mx_and_address_lookups_are_not_repeated_per_message(
    start: Start, dns: TestDnsServer
) -> None:
    node = await start(IP_ROLLUP)
    for user in ("o", "p", "q"):
        await node.send(recipients=f"{user}@foo.example")
    deliveries = await node.wait_for("Delivery", count=3)
    assert {d["site"] for d in deliveries} == {
        "unspecified->mx_list:127.0.0.7,127.0.0.8@smtp_client"
    }
    assert dns.query_count("foo.example", "MX") == 1
    assert dns.query_count("foo-example.mail.protection.outlook.com", "A") == 1


async def test_shaping_keyed_on_the_ip_rollup_domain_applies_to_its_ready_queue(
    make_node: Callable[..., Awaitable[Node]],
    dns: TestDnsServer,
    sinks: dict[str, RecordingSink],
    tmp_path: Path,
) -> None:
    # Only the rollup block leads to the sinks' port; the default one leads nowhere.
    port = sinks["127.0.0.7"].port
    shaping = tmp_path / "shaping.toml"
    shaping.write_text(
        '["default"]\nsmtp_port = 1\n\n'
        f'["outlook.ip_rollup"]\nmx_rollup = false\nsmtp_port = {port}\nprohibited_hosts = []\n'
    )
    source = policy(IP_ROLLUP) + (
        "local shaper = require('policy-extras.shaping'):setup_with_automation {\n"
        f"  no_default_files = true, extra_files = {{ '{shaping}' }},\n"
        "}\n"
        "kumo.on('get_egress_path_config', shaper.get_egress_path_config)\n"
    )
    node = await make_node(source, dns=dns, sink=sinks["127.0.0.1"])
    await node.send(recipients=["u@foo.example"])
    await node.send(recipients=["v@bar.example"])
    deliveries = await node.wait_for("Delivery", count=2)
    assert {d["site"] for d in deliveries} == {
        "unspecified->mx_list:127.0.0.7,127.0.0.8@smtp_client"
    }
    assert sorted(m.recipient for m in sinks["127.0.0.7"].messages) == [
        "u@foo.example",
        "v@bar.example",
    ]


async def test_injected_mail_is_rerouted_from_http_message_generated(
    make_node: Callable[..., Awaitable[Node]],
    dns: TestDnsServer,
    sinks: dict[str, RecordingSink],
) -> None:
    source = policy("") + (
        f"kumo.on('http_message_generated', function(msg)\n  {SUFFIX_ROLLUP}\nend)\n"
    )
    node = await make_node(source, dns=dns, sink=sinks["127.0.0.1"])
    status, answer = await node.inject(
        {
            "envelope_sender": "sender@example.org",
            "content": "Subject: injected\r\n\r\nhello\r\n",
            "recipients": [{"email": "w@hotmail.example"}],
        }
    )
    assert (status, answer["success_count"]) == (200, 1)
    (delivery,) = await node.wait_for("Delivery", recipient="w@hotmail.example")
    assert delivery["queue"] == "hotmail.example!outlook.example"
