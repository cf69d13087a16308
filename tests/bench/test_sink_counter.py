"""The harness's sink: ``smtp-sink -c`` counts every message although its reader thread
reads the counter at most once per ``READ_PAUSE`` (so that it takes no CPU from the side
it times)."""

from __future__ import annotations

import smtplib
import time

import pytest

from bench.perf import load
from bench.perf.load import SmtpSink, missing_tools

pytestmark = pytest.mark.skipif(
    "smtp-sink" in missing_tools(), reason="smtp-sink missing (apt-get install postfix)"
)


def test_paused_reader_counts_every_message_and_times_the_last() -> None:
    with SmtpSink(1_000) as sink:
        target = sink.expect(30)
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            for n in range(30):
                client.sendmail("a@example.com", [f"{n}@example.com"], b"Subject: x\r\n\r\nhi\r\n")
        sent = time.perf_counter()
        reached = sink.wait_total(10)
        assert reached is not None
        assert sink.received == target == 30
        assert sink.first_at is not None and started <= sink.first_at <= reached
        # The last count is seen within a pause or two of the last message (not in bulk
        # at the end).
        assert reached - sent < 20 * load.READ_PAUSE + 0.2
