"""KumoMTA's latency histograms on ``/metrics`` of a real node: the SMTP listener's
transactions (``smtpsrv_*``), spool saves, queue inserts, delivery attempts by protocol
and policy events, with KumoMTA's buckets and ``le`` spelling; and the histogram itself
(inclusive bounds, cumulative buckets, capped label values, workers' sums). Clients
that only talk connect from 127.0.0.5, as untrusted peers."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bench.common.smtp_client import RawSmtpClient
from kumocore.admin.merge import merge_metrics_text
from kumocore.admin.peers import PeerAnswer
from kumocore.node.latency import BUCKETS, Histogram, LabelledHistograms, histogram_family
from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import Samples, samples, scrape, scrape_after_delivering, series

UNTRUSTED = "127.0.0.5"
KUMOMTA_LE = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
              "+Inf")



def _count(values: Samples, name: str, *labels: tuple[str, str]) -> float:
    return values.get((f"{name}_count", tuple(sorted(labels))), 0.0)


def _buckets(values: Samples, name: str) -> dict[str, float]:
    """An unlabelled histogram's cumulative buckets, by ``le``, in the order exposed."""
    return {dict(labels)["le"]: value for (n, labels), value in values.items()
            if n == f"{name}_bucket"}


async def test_a_relayed_message_is_timed_at_each_step_with_kumomtas_buckets(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    values = await scrape_after_delivering(node, ["a@example.com", "b@example.com"])
    # One transaction, read and processed once; one message per recipient saved,
    # queued and delivered.
    for name in ("smtpsrv_transaction_duration", "smtpsrv_read_data_duration",
                 "smtpsrv_process_data_duration"):
        assert _count(values, name) == 1, name
    assert _count(values, "message_save_latency") == 2
    assert _count(values, "queue_insert_latency") == 2
    assert _count(values, "deliver_message_latency_rollup", ("service", "smtp_client")) == 2
    assert _count(values, "queue_resolve_latency") == 2
    assert _count(values, "ready_queue_insert_latency") == 2
    for name in ("queue_resolve_latency", "ready_queue_insert_latency"):
        assert values[(f"{name}_bucket", (("le", "0.005"),))] == 2, name  # microseconds
    # Bodies stay in memory until delivered: nothing is read back from the spool, and
    # kumocore never reloads meta (KumoMTA's message_meta_load_latency is not made up).
    assert _count(values, "message_data_load_latency") == 0
    assert ("message_meta_load_latency_count", ()) not in values
    buckets = _buckets(values, "smtpsrv_transaction_duration")
    assert tuple(buckets) == KUMOMTA_LE
    assert buckets["+Inf"] == 1
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative
    # A transaction takes at least as long as its DATA's reading and processing.
    total = values[("smtpsrv_transaction_duration_sum", ())]
    parts = (values[("smtpsrv_read_data_duration_sum", ())]
             + values[("smtpsrv_process_data_duration_sum", ())])
    assert total >= parts > 0


async def test_policy_events_are_timed_under_kumomtas_event_names(make_node: MakeNode) -> None:
    node = await make_node()
    assert await node.send() == {}
    await node.wait_for("Delivery")
    events = {labels[0] for labels in series(await scrape(node), "lua_event_latency_count")}
    # The test node's plugin implements get_egress_path_config: named without "kumo_".
    assert "get_egress_path_config" in events
    assert not any(event.startswith("kumo_") for event in events)


async def test_a_reset_transaction_is_timed_and_reads_no_data(make_node: MakeNode) -> None:
    node = await make_node()
    client = await RawSmtpClient.connect(node.smtp_port, source=UNTRUSTED)
    try:
        assert (await client.read_reply()).code == 220
        assert (await client.command("EHLO client.example")).code == 250
        assert (await client.command("MAIL FROM:<s@example.org>")).code == 250
        assert (await client.command("RSET")).code == 250
        assert (await client.command("RSET")).code == 250  # no transaction: nothing to end
    finally:
        await client.close()
    values = await scrape(node)
    assert _count(values, "smtpsrv_transaction_duration") == 1
    assert _count(values, "smtpsrv_read_data_duration") == 0


async def test_a_client_gone_mid_transaction_ends_it_once(make_node: MakeNode) -> None:
    node = await make_node()
    after_mail = await RawSmtpClient.connect(node.smtp_port)
    mid_data = await RawSmtpClient.connect(node.smtp_port)
    for client in (after_mail, mid_data):
        assert (await client.read_reply()).code == 220
        assert (await client.command("EHLO client.example")).code == 250
        assert (await client.command("MAIL FROM:<s@example.org>")).code == 250
    assert (await mid_data.command("RCPT TO:<a@example.com>")).code == 250
    assert (await mid_data.command("DATA")).code == 354
    await mid_data.send(b"Subject: cut\r\n\r\nhalf a mess")
    for client in (after_mail, mid_data):
        await client.close()
    async with asyncio.timeout(5):
        while _count(values := await scrape(node), "smtpsrv_transaction_duration") < 2:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # a second observation of the cut one would come now
    values = await scrape(node)
    assert _count(values, "smtpsrv_transaction_duration") == 2
    assert _count(values, "smtpsrv_read_data_duration") == 0  # never finished reading


async def test_a_slow_data_phase_lands_above_the_first_buckets(make_node: MakeNode) -> None:
    node = await make_node()
    client = await RawSmtpClient.connect(node.smtp_port)  # a relay host: it may relay
    try:
        assert (await client.read_reply()).code == 220
        assert (await client.command("EHLO client.example")).code == 250
        assert (await client.command("MAIL FROM:<s@example.org>")).code == 250
        assert (await client.command("RCPT TO:<a@example.com>")).code == 250
        assert (await client.command("DATA")).code == 354
        await client.send(b"Subject: slow\r\n\r\nfirst line\r\n")
        await asyncio.sleep(0.06)
        assert (await client.command(".")).code == 250
    finally:
        await client.close()
    values = await scrape(node)
    read = _buckets(values, "smtpsrv_read_data_duration")
    assert read["0.05"] == 0 and read["+Inf"] == 1
    assert values[("smtpsrv_read_data_duration_sum", ())] >= 0.06


def test_a_value_on_a_bound_counts_in_that_bound_and_buckets_are_cumulative() -> None:
    histogram = Histogram()
    for seconds in (0.0, 0.005, 0.0051, 10.0, 11.0):
        histogram.observe(seconds)
    family = histogram_family("x", "doc", histogram)
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == "x_bucket"}
    assert buckets["0.005"] == 2 and buckets["0.01"] == 3
    assert buckets["10"] == 4 and buckets["+Inf"] == 5
    assert len(buckets) == len(BUCKETS) + 1
    totals = {s.name: s.value for s in family.samples if s.name != "x_bucket"}
    assert totals == {"x_count": 5, "x_sum": pytest.approx(21.0101)}


def test_label_values_past_the_cap_are_folded_into_other() -> None:
    series_by_service = {f"s{n}": Histogram() for n in range(5)}
    for n, histogram in enumerate(series_by_service.values()):
        for _ in range(n + 1):
            histogram.observe(0.001)
    family = histogram_family("x", "doc", label="service", series=series_by_service, limit=3)
    counts = {s.labels["service"]: s.value for s in family.samples if s.name == "x_count"}
    assert counts == {"s4": 5, "s3": 4, "other": 1 + 2 + 3}


def test_workers_histograms_add_up_bucket_by_bucket() -> None:
    def text(seconds: float) -> bytes:
        histogram = Histogram()
        histogram.observe(seconds)
        family = histogram_family("x", "doc", histogram)
        lines = ["# HELP x doc", "# TYPE x histogram"] + [
            f'{s.name}{{le="{s.labels["le"]}"}} {s.value}' if "le" in s.labels
            else f"{s.name} {s.value}" for s in family.samples]
        return ("\n".join(lines) + "\n").encode()

    merged = merge_metrics_text(web.Response(body=text(0.001)), [PeerAnswer(1, 200, text(1.0))])
    assert isinstance(merged.body, bytes)
    buckets = {labels[0]: value for labels, value in
               series(samples(merged.body.decode()), "x_bucket").items()}
    assert buckets["0.005"] == 1 and buckets["1"] == 2 and buckets["+Inf"] == 2


TIMED_POLICY = """
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
  local closed <close> = kumo.time.start_timer('policy-scope')
  local timer = kumo.time.start_timer('policy-done')
  kumo.time.sleep(0.03)
  timer:done()
  timer:done()  -- recorded once
end)
"""


async def test_policy_timers_are_exported_as_user_lua_latency(make_node: MakeNode) -> None:
    node = await make_node(TIMED_POLICY)
    assert await node.send() == {}
    await node.wait_for("Delivery")
    values = await scrape(node)
    counts = series(values, "user_lua_latency_count")
    # Labels are per process (other tests' timers may be there too): check ours.
    assert counts[("policy-done",)] == counts[("policy-scope",)] == 1
    assert values[("user_lua_latency_sum", (("label", "policy-scope"),))] >= 0.03
    events = series(values, "lua_event_latency_count")
    assert events[("smtp_server_message_received",)] == 1


def test_label_values_past_the_series_bound_are_observed_as_other() -> None:
    # A policy choosing its timers' labels (user_lua_latency) cannot grow them unbounded.
    histograms = LabelledHistograms(max_series=3)
    for n in range(6):
        histograms.observe(f"label-{n}", 0.001)
    assert set(histograms.series) == {"label-0", "label-1", "label-2", "other"}
    assert histograms.series["other"].count == 3
