"""KumoMTA's connection and SMTP server metrics on ``/metrics`` of a real node:
``connection_count`` and ``total_connection_count`` for the SMTP listener
(``esmtp_listener``), each egress path and each protocol; ``total_connections_denied``
for connections turned away at a limit; ``smtp_server_rejections`` for 4xx/5xx replies.
Untrusted clients connect from 127.0.0.5; the gauge must come back to 0 when they go."""

from __future__ import annotations

import asyncio

from bench.common.smtp_client import RawSmtpClient
from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import SINK_PATH_SERVICE, scrape, scrape_after_delivering, series

UNTRUSTED = "127.0.0.5"



async def test_the_smtp_listener_counts_open_accepted_denied_and_rejected_connections(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp={"max_connections_per_peer": 2})
    listener = f"127.0.0.1:{node.smtp_port}"
    clients = [await RawSmtpClient.connect(node.smtp_port, source=UNTRUSTED) for _ in range(3)]
    try:
        assert [(await c.read_reply()).code for c in clients] == [220, 220, 421]
        first = clients[0]
        assert (await first.command("EHLO client.example")).code == 250
        assert (await first.command("RCPT TO:<a@example.com>")).code == 503  # no MAIL
        assert (await first.command("NONSENSE")).code == 500
        values = await scrape(node)
        connections = series(values, "connection_count")
        assert connections[("esmtp_listener",)] == 2  # the third was turned away
        assert series(values, "total_connection_count")[("esmtp_listener",)] == 3
        assert series(values, "total_connections_denied") == {("esmtp_listener",): 1}
        # The 421 4.3.2 of the refusal is not a rejection, as in KumoMTA.
        assert series(values, "smtp_server_rejections") == {("total",): 2, (listener,): 2}
    finally:
        for client in clients:
            await client.close()
    for _ in range(100):  # the sessions end: the gauge comes back down, nothing leaks
        if series(await scrape(node), "connection_count").get(("esmtp_listener",)) == 0:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("connection_count{service=esmtp_listener} stayed above 0")


async def test_delivery_connections_are_counted_per_path_and_per_protocol(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    values = await scrape_after_delivering(node, ["a@example.com", "b@example.com"])
    path = SINK_PATH_SERVICE
    opened = series(values, "total_connection_count")
    assert opened[("smtp_client",)] == opened[(path,)] >= 1
    assert opened[("esmtp_listener",)] == 1  # node.send's one connection
    open_now = series(values, "connection_count")
    assert open_now[("smtp_client",)] == open_now.get((path,), 0)  # the sum per protocol
    assert values[("scheduled_queue_count", ())] == 1  # example.com's, until reaped


async def test_a_forged_local_address_adds_no_rejection_series(make_node: MakeNode) -> None:
    # XCLIENT (or a PROXY header) may say which local address the client reached; the
    # count stays under the socket's own, so a client cannot mint labels.
    node = await make_node(esmtp={"allow_xclient": True})
    client = await RawSmtpClient.connect(node.smtp_port)
    try:
        assert (await client.read_reply()).code == 220
        assert (await client.command("EHLO client.example")).code == 250
        assert (await client.command("XCLIENT DESTADDR=10.9.9.9 DESTPORT=2525")).code == 220
        assert (await client.command("NONSENSE")).code == 500
    finally:
        await client.close()
    rejections = series(await scrape(node), "smtp_server_rejections")
    assert rejections == {("total",): 1, (f"127.0.0.1:{node.smtp_port}",): 1}



def test_rejections_by_local_address_are_capped_and_the_rest_counted_as_other() -> None:
    # An AnyIP host answers on every address of a routed prefix: one series each would
    # grow without bound, so past the cap they share "other" and nothing is lost.
    from kumocore.node.node_metrics import (
        MAX_REJECTION_ADDRESSES,
        OTHER_ADDRESS,
        SmtpServerCounts,
    )

    counts = SmtpServerCounts()
    extra = 37
    for n in range(MAX_REJECTION_ADDRESSES + extra):
        counts.rejected(f"2001:db8::{n:x}")
    counts.rejected("2001:db8::0")  # a known address keeps its own series past the cap
    rejections = counts.rejections
    assert len(rejections) == MAX_REJECTION_ADDRESSES
    assert rejections["total"] == MAX_REJECTION_ADDRESSES + extra + 1
    assert rejections["2001:db8::0"] == 2
    assert rejections[OTHER_ADDRESS] == extra + 2
