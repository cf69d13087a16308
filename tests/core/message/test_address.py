from __future__ import annotations

import re

import pytest

from kumocore.mail.address import (
    NULL_SENDER,
    AddressError,
    EnvelopeAddress,
    parse_address_header,
    parse_envelope_address,
)


@pytest.mark.parametrize(
    ("text", "user", "domain"),
    [
        ("user@example.com", "user", "example.com"),
        ("<user@example.com>", "user", "example.com"),
        ("First.Last+tag@Example.COM", "First.Last+tag", "example.com"),
        ("user@example.com.", "user", "example.com"),
        ('"john doe"@example.com', '"john doe"', "example.com"),
        ('"a\\"b"@example.com', '"a\\"b"', "example.com"),
        ("user@[192.0.2.1]", "user", "[192.0.2.1]"),
        ("user@[ipv6:2001:DB8::1]", "user", "[IPv6:2001:db8::1]"),
        ("ünïcode@bücher.de", "ünïcode", "bücher.de"),
        ("postmaster@localhost", "postmaster", "localhost"),
    ],
)
def test_valid_envelope_addresses_parse_into_user_and_normalised_domain(
    text: str, user: str, domain: str
) -> None:
    addr = parse_envelope_address(text)
    assert (addr.user, addr.domain) == (user, domain)
    assert str(addr) == addr.email == f"{user}@{domain}"


def test_percent_hack_is_an_ordinary_local_part_not_a_route() -> None:
    addr = parse_envelope_address("user%other@local")
    assert (addr.user, addr.domain) == ("user%other", "local")


def test_quoted_at_sign_stays_in_the_local_part() -> None:
    addr = parse_envelope_address('"user@other"@local')
    assert (addr.user, addr.domain) == ('"user@other"', "local")


def test_bang_path_is_an_ordinary_local_part() -> None:
    addr = parse_envelope_address("a!b@c")
    assert (addr.user, addr.domain) == ("a!b", "c")


def test_null_sender_is_allowed_only_where_asked() -> None:
    assert parse_envelope_address("<>") == NULL_SENDER
    assert parse_envelope_address("<>").email == ""
    assert parse_envelope_address("<>").is_null
    with pytest.raises(AddressError, match="null address not allowed"):
        parse_envelope_address("<>", allow_null=False)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty address"),
        ("@a:b@c", "source routes"),
        ("<@a,@b:user@c>", "source routes"),
        ("user", "missing @domain"),
        ("user@", "missing domain"),
        ("@example.com", "source routes"),
        ("user name@example.com", "space in local part"),
        ("user@exa mple.com", "space in domain"),
        (" user@example.com", "space in local part"),
        ("user\r\n@example.com", "control character"),
        ("user@example.com\x00", "control character"),
        ("<user@example.com", "unbalanced angle brackets"),
        ("user@example.com>", "unbalanced angle brackets"),
        ("<<user@example.com>>", "unbalanced angle brackets"),
        ("user@[1.2.3.4", "unbalanced square brackets"),
        ("user@[1.2.3]", "invalid address literal"),
        ("user@[example.com]", "invalid address literal"),
        (".user@example.com", "leading, trailing or doubled dot"),
        ("us..er@example.com", "leading, trailing or doubled dot"),
        ("us(er@example.com", "character '(' not allowed"),
        ("a@b@example.com", "character '@' not allowed"),
        ('"unterminated@example.com', "quoted local part"),
        ('""@example.com', "empty local part"),
        ("user@example..com", "empty label"),
        ("user@example.com..", "empty label"),
        ("user@-example.com", "invalid domain label"),
        ("user@exa_mple.com", "invalid domain label"),
        ("user@" + "a" * 64 + ".com", "label longer than 63"),
        ("user@b\u3002c", "invalid domain label"),
        ("x" * 300 + "@example.com", "local part longer"),
    ],
)
def test_bad_envelope_addresses_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(AddressError, match=re.escape(reason)) as info:
        parse_envelope_address(text)
    assert isinstance(info.value, ValueError)
    assert info.value.text == text


def test_envelope_address_is_frozen_and_hashable() -> None:
    addr = parse_envelope_address("a@b.com")
    assert addr == EnvelopeAddress("a", "b.com")
    assert {addr: 1}[EnvelopeAddress("a", "b.com")] == 1
    with pytest.raises(AttributeError):
        addr.user = "x"  # type: ignore[misc]


def test_address_header_decodes_rfc2047_display_names_after_splitting() -> None:
    # The decoded name contains a comma: decoding before splitting would break the list.
    raw = '=?utf-8?q?Doe=2C_Andr=C3=A9?= <andre@Example.com>, "Smith, J" <j@x.org>, bare@y.net'
    header = parse_address_header(raw)
    assert header is not None
    assert [a.email for a in header.list] == ["andre@Example.com", "j@x.org", "bare@y.net"]
    first = header.list[0]  # several addresses: the single-address accessors raise
    assert first.name == "Doe, André"
    assert (first.user, first.domain, first.email) == (
        "andre",
        "example.com",
        "andre@Example.com",
    )
    assert header.list[1].name == "Smith, J"
    assert header.list[2].name is None


def test_address_header_of_only_an_empty_group_has_an_empty_list_and_blank_is_none() -> None:
    # KumoMTA parses `undisclosed-recipients:;` as one group with no members.
    header = parse_address_header("undisclosed-recipients:;")
    assert header is not None and header.list == ()
    assert parse_address_header("") is None


def test_domain_verdict_is_remembered_but_errors_still_name_each_address() -> None:
    # The domain check is cached per domain: the second address with the same bad
    # domain must still get an error naming that address, not the first one.
    for text in ("a@bad..example", "b@bad..example"):
        with pytest.raises(AddressError) as info:
            parse_envelope_address(text)
        assert text in str(info.value)
        assert "empty label" in str(info.value)
    first = parse_envelope_address("a@Example.COM.")
    second = parse_envelope_address("b@Example.COM.")
    assert first.domain == second.domain == "example.com"


# The plain ASCII form takes a one-regex fast path; inside angle brackets the same address
# goes the general way. Both must agree on the result and on the reason for a refusal.
_FAST_PATH_CASES = [
    "a@b.example", "12345@dest.example", "A.B+tag@Example.COM.", "o'hara@x.org",
    "a..b@x.com", ".a@x.com", "a.@x.com", "a@-x.com", "a@x-.com", "a@x..com", "a@.x.com",
    "a@x.com.", "a@x.com..", "a@" + "x" * 64 + ".com", "x" * 250 + "@a.com",
    "x" * 257 + "@a.com", "a@" + "b." * 130 + "com", "a@x_y.com", "a@1.2.3.4",
]


@pytest.mark.parametrize("text", _FAST_PATH_CASES)
def test_plain_address_fast_path_agrees_with_general_parser(text: str) -> None:
    def outcome(value: str) -> object:
        try:
            return parse_envelope_address(value, allow_null=False)
        except AddressError as exc:
            return exc.reason

    assert outcome(text) == outcome(f"<{text}>")
