from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kumocore.mail import queue_name
from kumocore.mail.message import Message
from kumocore.mail.message_spool import _spooled_sender
from kumocore.mail.queue_name import QueueNameParts, message_queue, parse_queue_name, queue_name_for


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("example.com", "t", "c", None), "c:t@example.com"),
        (("example.com", "t", None, None), "t@example.com"),
        (("example.com", None, "c", None), "c:@example.com"),
        (("example.com", None, None, None), "example.com"),
        (("example.com", "t", "c", "smarthost.net"), "c:t@example.com!smarthost.net"),
        (("example.com", None, None, "smarthost.net"), "example.com!smarthost.net"),
        (("example.com", "", "", ""), "example.com"),
    ],
)
def test_queue_name_for_builds_kumomta_scheduled_queue_names(
    args: tuple[str, str | None, str | None, str | None], name: str
) -> None:
    assert queue_name_for(*args) == name


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("foo.com", QueueNameParts(None, None, "foo.com", None)),
        ("tenant@foo.com", QueueNameParts(None, "tenant", "foo.com", None)),
        ("campaign:@foo.com", QueueNameParts("campaign", None, "foo.com", None)),
        ("campaign:tenant@foo.com", QueueNameParts("campaign", "tenant", "foo.com", None)),
        (
            "campaign:tenant@foo.com!routing.com",
            QueueNameParts("campaign", "tenant", "foo.com", "routing.com"),
        ),
        ("foo.com:2025", QueueNameParts(None, None, "foo.com:2025", None)),
        ("foo.com!routing.com:2025", QueueNameParts(None, None, "foo.com", "routing.com:2025")),
        ("a:b:c@d@e", QueueNameParts("a", "b:c", "d@e", None)),
    ],
)
def test_parse_queue_name_splits_on_first_at_colon_and_bang(
    name: str, parts: QueueNameParts
) -> None:
    assert parse_queue_name(name) == parts


def test_parse_and_format_round_trip() -> None:
    for name in ["c:t@d.com!r.net", "t@d.com", "c:@d.com", "d.com", "d.com!r.net"]:
        assert str(parse_queue_name(name)) == name


def _msg(**meta: object) -> Message:
    return Message("s@example.org", "rcpt@Example.COM", b"Subject: x\r\n\r\nbody", meta=meta)


def test_message_queue_name_comes_from_recipient_domain_and_meta() -> None:
    assert _msg().queue_name() == "example.com"
    assert _msg(tenant="acme").queue_name() == "acme@example.com"
    assert _msg(campaign="spring", tenant="acme").queue_name() == "spring:acme@example.com"
    assert _msg(routing_domain="relay.net").queue_name() == "example.com!relay.net"


def test_queue_meta_overrides_the_whole_name() -> None:
    assert _msg(queue="null", tenant="acme").queue_name() == "null"


def test_non_string_queue_meta_is_refused_naming_the_key() -> None:
    with pytest.raises(TypeError, match="'tenant'"):
        _msg(tenant=5).queue_name()


_PART = st.one_of(st.none(), st.text(alphabet="ab:@!%3A", max_size=6))


@given(tenant=_PART, campaign=_PART, routing_domain=_PART)
def test_message_queue_parts_are_the_meta_values_and_match_parsing_the_name(
    tenant: str | None, campaign: str | None, routing_domain: str | None
) -> None:
    meta = {k: v for k, v in [("tenant", tenant), ("campaign", campaign),
                              ("routing_domain", routing_domain)] if v is not None}
    message = _msg(**meta)
    name, parts = message_queue(message)
    assert name == message.queue_name()
    assert parts == QueueNameParts(campaign or None, tenant or None, message.recipient.domain,
                                   routing_domain or None)
    assert parse_queue_name(name) == parts  # what get_queue_config got before, by parsing


def test_message_queue_named_by_meta_is_parsed_from_that_name() -> None:
    assert message_queue(_msg(queue="c:t@other.net!relay.net", tenant="ignored")) == (
        "c:t@other.net!relay.net", QueueNameParts("c", "t", "other.net", "relay.net"))
    with pytest.raises(TypeError, match="'queue'"):
        message_queue(_msg(queue=""))


def test_the_memo_of_built_queue_names_stays_bounded_past_its_size() -> None:
    bound = queue_name._named.cache_info().maxsize
    assert bound is not None
    for n in range(bound + 100):
        message = Message("a@example.com", f"u@d{n}.example", b"Subject: x\r\n\r\n")
        assert message.queue_name() == f"d{n}.example"
    assert queue_name._named.cache_info().currsize == bound
    sender_bound = _spooled_sender.cache_info().maxsize
    assert sender_bound is not None
    for n in range(sender_bound + 100):
        assert _spooled_sender(f"s{n}@example.com").email == f"s{n}@example.com"
    assert _spooled_sender.cache_info().currsize == sender_bound
