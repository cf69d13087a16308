"""KumoMTA's DNS forms end to end, at real loopback receivers: a queue named by a domain
literal with a port (``[IP]:PORT``, ``[IP:PORT]``), and a policy whose
``kumo.dns.configure_resolver { Test = ... }`` makes delivery resolve from zone texts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.common.sink import RecordingSink
from kumocore.mail.queue_name import queue_name_for
from kumocore.testing.plugin import MakeNode
from tests.queue.harness import Bench


@pytest.fixture
async def other_sink() -> AsyncIterator[RecordingSink]:
    """A receiver on another address and port than the bench's sink (the path's
    ``smtp_port``): mail arriving here went where the literal's port said."""
    async with RecordingSink(host="127.0.0.2") as server:
        yield server


@pytest.mark.parametrize("form", ["[127.0.0.2]:{port}", "[127.0.0.2:{port}]"])
async def test_a_queue_naming_a_literal_with_a_port_delivers_to_that_port(
    make_bench: Any, other_sink: RecordingSink, form: str
) -> None:
    bench: Bench = await make_bench()
    queue = form.format(port=other_sink.port)
    # nowhere.invalid is not in DNS: an MX lookup would fail the attempt.
    await bench.inject("rcpt@nowhere.invalid", queue=queue)
    records = await bench.wait_for_records("Delivery", 1)
    assert [m.recipient for m in other_sink.messages] == ["rcpt@nowhere.invalid"]
    assert bench.sink.messages == []
    # KumoMTA's site for the literal: the address with its port.
    assert records[0]["site"] == f"unspecified->127.0.0.2:{other_sink.port}@smtp_client"
    assert records[0]["queue"] == queue


async def test_a_routing_domain_literal_with_a_port_decides_where_mail_goes(
    make_bench: Any, other_sink: RecordingSink
) -> None:
    bench: Bench = await make_bench()
    routing = f"[127.0.0.2]:{other_sink.port}"
    await bench.inject(
        "rcpt@customer.example", queue=queue_name_for("customer.example", routing_domain=routing)
    )
    records = await bench.wait_for_records("Delivery", 1)
    assert [m.recipient for m in other_sink.messages] == ["rcpt@customer.example"]
    assert records[0]["queue"] == f"customer.example!{routing}"


ZONED_POLICY = """\
local kumo = require 'kumo'
kumo.on('init', function()
  -- After the node pointed the resolver at its DNS server: zones from now on.
  kumo.dns.configure_resolver { Test = { zones = { [[
$ORIGIN zoned.example.
@  600 IN MX 10 mx.zoned.example.
mx 600 IN A  127.0.0.1
]] } } }
end)
kumo.on('smtp_server_message_received', function(msg)
  if msg:recipient().domain == 'literal.example' then
    msg:set_meta('queue', '[127.0.0.2]:OTHER_PORT')
  end
end)
"""


async def test_a_policy_test_resolver_routes_delivery_and_a_literal_port_queue_from_lua(
    make_node: MakeNode, other_sink: RecordingSink
) -> None:
    node = await make_node(ZONED_POLICY.replace("OTHER_PORT", str(other_sink.port)))
    assert node.sink is not None
    await node.send(recipients=["a@zoned.example", "b@elsewhere.example", "c@literal.example"])
    await node.wait_for("Delivery", recipient="a@zoned.example")
    await node.wait_for("Delivery", recipient="c@literal.example")
    # elsewhere.example is in the node's DNS server (everything is), but not in the zones.
    failed = await node.wait_for("TransientFailure", recipient="b@elsewhere.example")
    assert "NXDOMAIN" in failed[0]["response"]["content"]
    assert [m.recipient for m in node.sink.messages] == ["a@zoned.example"]
    assert [m.recipient for m in other_sink.messages] == ["c@literal.example"]
    assert node.dns.queries == []
