"""factor_names must produce KumoMTA's site names byte for byte (mailexchanger unit tests)."""

from __future__ import annotations

import pytest

from kumocore.dns import factor_names
from kumocore.dns.site_name import split_bracketed, split_port

GMAIL = [
    "gmail-smtp-in.l.google.com.",
    "alt1.gmail-smtp-in.l.google.com.",
    "alt2.gmail-smtp-in.l.google.com.",
    "alt3.gmail-smtp-in.l.google.com.",
    "alt4.gmail-smtp-in.l.google.com.",
]


def test_gmail_shorter_primary_makes_the_first_label_optional() -> None:
    assert factor_names(GMAIL) == "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com"


def test_yahoo_hosts_differing_in_first_label_become_an_alternation() -> None:
    hosts = ["mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net", "mta7.am0.yahoodns.net"]
    assert factor_names(hosts) == "(mta5|mta6|mta7).am0.yahoodns.net"


def test_case_is_normalised_to_lower_case() -> None:
    hosts = ["mta5.AM0.yahoodns.net", "mta6.am0.yAHOodns.net", "MTA7.am0.yahoodns.NET."]
    assert factor_names(hosts) == "(mta5|mta6|mta7).am0.yahoodns.net"


def test_same_port_is_attached_to_the_tld_label() -> None:
    hosts = ["mta5.am0.yahoodns.net:123", "mta6.am0.yahoodns.net:123"]
    assert factor_names(hosts) == "(mta5|mta6).am0.yahoodns.net:123"


def test_differing_ports_alternate_on_the_tld_label() -> None:
    hosts = [
        "mta5.am0.yahoodns.net:123",
        "mta6.am0.yahoodns.net:456",
        "mta7.am0.yahoodns.net:123",
    ]
    assert factor_names(hosts) == "(mta5|mta6|mta7).am0.yahoodns.(net:123|net:456)"


def test_mixed_providers_factor_each_position_independently_in_input_order() -> None:
    hosts = [
        "example-com.mail.protection.outlook.com.",
        "mx-biz.mail.am0.yahoodns.net.",
        "mx-biz.mail.am0.yahoodns.net.",
    ]
    assert (
        factor_names(hosts)
        == "(example-com|mx-biz).mail.(protection|am0).(outlook|yahoodns).(com|net)"
    )
    assert (
        factor_names(list(reversed(hosts)))
        == "(mx-biz|example-com).mail.(am0|protection).(yahoodns|outlook).(net|com)"
    )


def test_single_host_is_its_own_site_name_without_trailing_dot() -> None:
    assert factor_names(["MX.ExampleCorp.com."]) == "mx.examplecorp.com"


@pytest.mark.parametrize("hosts", [[], ["."]])
def test_no_hosts_or_null_mx_give_an_empty_site_name(hosts: list[str]) -> None:
    assert factor_names(hosts) == ""


def test_invalid_host_names_are_left_out() -> None:
    assert factor_names(["mx..example.com", "mx.example.com"]) == "mx.example.com"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mx.example.com:2525", ("mx.example.com", 2525)),
        ("mx.example.com.:25", ("mx.example.com.", 25)),
        ("mx.example.com", ("mx.example.com", None)),
        ("mx.example.com:smtp", ("mx.example.com:smtp", None)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("mx.example.com:99999", ("mx.example.com:99999", None)),
    ],
)
def test_split_port_only_takes_a_numeric_port_of_a_host_name(
    name: str, expected: tuple[str, int | None]
) -> None:
    assert split_port(name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[::1]", ("::1", None)), ("[::1]:25", ("::1", 25)),
     ("[10.0.0.1]:99999", ("10.0.0.1", 99999))],
)
def test_split_bracketed_takes_the_address_and_up_to_five_digits_of_port(
    text: str, expected: tuple[str, int | None]
) -> None:
    assert split_bracketed(text) == expected  # the port's range is the caller's check


@pytest.mark.parametrize("text", ["[::1]x", "[::1]:", "[::1]:123456", "[::1]:²", "[::1]: 25"])
def test_split_bracketed_refuses_anything_but_a_colon_and_digits_after_the_bracket(
    text: str,
) -> None:
    with pytest.raises(ValueError, match="expected"):
        split_bracketed(text)
