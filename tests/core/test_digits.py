"""kumocore.digits: numbers read from peers, reports and requests."""

from __future__ import annotations

import pytest

from kumocore.digits import decimal, port_number


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("25", 25), ("007", 7), ("9" * 18, int("9" * 18))]
)
def test_ascii_digits_within_the_bound_are_read_as_numbers(text: str, value: int) -> None:
    assert decimal(text) == value


@pytest.mark.parametrize("text", [
    "", "-1", "+1", " 1", "1 ", "1.0", "0x10",
    "²", "١٢",  # digits to str.isdigit, not to int (the first) or not ASCII (the second)
    "9" * 19,  # over the bound
    "9" * 5000,  # over int's own 4,300-digit limit: must not raise
])
def test_anything_else_is_not_a_number_and_never_raises(text: str) -> None:
    assert decimal(text) is None


def test_the_bound_is_the_callers() -> None:
    assert decimal("65535", max_digits=5) == 65535
    assert decimal("065535", max_digits=5) is None


@pytest.mark.parametrize(("text", "port"), [
    ("0", 0), ("25", 25), ("65535", 65535), ("65536", None), ("99999", None),
    ("025", 25), ("000025", None), ("²", None), ("", None),
])
def test_a_port_is_zero_to_65535_in_at_most_five_ascii_digits(text: str, port: int | None) -> None:
    assert port_number(text) == port
