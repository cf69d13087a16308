"""``kumocore top`` rates: per-second differences of the node's counters, labels summed."""

from __future__ import annotations

from kumocore.admin.top import Sample, _total, rates


def test_rates_are_counter_differences_per_second_and_never_negative() -> None:
    zero = dict.fromkeys(("total_messages_received", "kumocore_messages_delivered_total",
                          "kumocore_messages_transfail_total", "kumocore_messages_fail_total",
                          "total_messages_expired"), 0.0)  # fmt: skip
    before = Sample(10.0, zero, {})
    after = Sample(12.0, {**zero, "total_messages_received": 40.0,
                          "kumocore_messages_delivered_total": 10.0,
                          "kumocore_messages_fail_total": -5.0}, {})  # fmt: skip (a restart resets)
    got = rates(before, after)
    assert got["received"] == 20.0
    assert got["delivered"] == 5.0
    assert got["bounced"] == 0.0


def test_labelled_counters_are_summed_over_their_labels() -> None:
    assert _total({"service": {"esmtp_listener": 3, "http_listener": 4}}) == 7.0
    assert _total(2) == 2.0
    assert _total("n/a") == 0.0
