"""Bounce/suspend bodies: null means "not given" (KumoMTA's Option fields), but a value of
the wrong type is a 400 even when it is falsy (found by schemathesis once its filter went)."""

from __future__ import annotations

from typing import Any

import pytest

from kumocore.errors import ConfigError
from kumocore.queue.admin import parse_rule


def test_null_duration_expires_and_queue_names_mean_not_given() -> None:
    rule = parse_rule({"reason": "r", "duration": None, "expires": None, "queue_names": None})
    assert rule.duration == 300.0 and rule.queue_names == ()


@pytest.mark.parametrize("body", [
    {"reason": "r", "queue_names": False},
    {"reason": "r", "queue_names": 0},
    {"reason": "r", "duration": ""},
    {"reason": "r", "duration": False},
    {"reason": "r", "expires": ""},
])
def test_falsy_values_of_the_wrong_type_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse_rule(body)
