"""The accounting log's record ``timestamp``: KumoMTA serializes a chrono ``DateTime<Utc>``
(``SecondsFormat::AutoSi``), as for every other time kumocore writes in KumoMTA's JSON."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from kumocore.http.acl_acct import timestamp


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (1765000801.0, "2025-12-06T06:00:01Z"),  # a whole second: no fraction
        (1765000801.5, "2025-12-06T06:00:01.500Z"),  # a whole millisecond: 3 digits
        (1765000801.25, "2025-12-06T06:00:01.250Z"),
        (1765000801.123456, "2025-12-06T06:00:01.123456Z"),  # else 6 (a float's limit)
    ],
)
def test_the_timestamp_has_chronos_fraction_digits(
    monkeypatch: pytest.MonkeyPatch, now: float, expected: str
) -> None:
    monkeypatch.setattr(time, "time", lambda: now)
    assert timestamp() == expected


def test_the_timestamp_is_now_in_utc() -> None:
    before = datetime.now(UTC)
    stamp = timestamp()
    after = datetime.now(UTC)
    assert stamp.endswith("Z")
    assert before.replace(microsecond=0) <= datetime.fromisoformat(stamp) <= after
