"""``dispatcher_progress_watchdog_timeout``: loaded as KumoMTA's (a duration or nil), and
the threshold derived when it is nil (kumocore.queue.watchdog)."""

from __future__ import annotations

import pytest

from kumocore.config import EgressPathConfig
from kumocore.queue.watchdog import derived_threshold


def test_the_option_loads_as_a_duration_or_nil() -> None:
    config = EgressPathConfig.from_options({"dispatcher_progress_watchdog_timeout": "5m"})
    assert config.dispatcher_progress_watchdog_timeout == 300
    assert config.to_dict()["dispatcher_progress_watchdog_timeout"] == "5m"
    assert EgressPathConfig.from_options({}).dispatcher_progress_watchdog_timeout is None


@pytest.mark.parametrize(
    ("options", "protocol", "expected"),
    [
        ({}, "smtp_client", 600.0),  # 2 x the 300 s command timeouts
        (
            {
                "mail_from_timeout": "10s",
                "rcpt_to_timeout": "10s",
                "data_timeout": "10s",
                "data_dot_timeout": "100s",
            },
            "smtp_client",
            200.0,
        ),  # the longest one counts
        (
            {
                "mail_from_timeout": "5s",
                "rcpt_to_timeout": "5s",
                "data_timeout": "5s",
                "data_dot_timeout": "5s",
            },
            "smtp_client",
            60.0,
        ),  # never below a minute
        ({"data_dot_timeout": "400s"}, "xfer", 800.0),
        ({"data_dot_timeout": "1s"}, "lua:make.webhook", 600.0),  # user code: 10 minutes
        ({}, "defersmtpinject", 600.0),
        ({}, "maildir:/var/mail", 60.0),
    ],
)
def test_the_derived_threshold_follows_the_protocol_and_the_command_timeouts(
    options: dict[str, object], protocol: str, expected: float
) -> None:
    assert derived_threshold(EgressPathConfig.from_options(options), protocol) == expected
