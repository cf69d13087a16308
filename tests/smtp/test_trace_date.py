"""The Received: date: rendered once per second, but always the current second."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

import pytest

from kumocore.reception import trace


def test_rfc2822_now_renders_the_current_second_and_follows_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_751_367_157.25]
    monkeypatch.setattr(trace.time, "time", lambda: now[0])
    first = trace.rfc2822_now()
    assert first == "Tue, 01 Jul 2025 10:52:37 +0000"
    now[0] += 0.5  # same second: same text
    assert trace.rfc2822_now() == first
    now[0] += 0.5  # next second: the cached text must not be reused
    assert trace.rfc2822_now() == "Tue, 01 Jul 2025 10:52:38 +0000"
    now[0] += 86_400 * 200
    expected = email.utils.format_datetime(datetime.fromtimestamp(int(now[0]), UTC))
    assert trace.rfc2822_now() == expected


def test_rfc2822_now_matches_the_wall_clock() -> None:
    before = email.utils.format_datetime(datetime.now(UTC))
    value = trace.rfc2822_now()
    after = email.utils.format_datetime(datetime.now(UTC))
    assert value in (before, after)
