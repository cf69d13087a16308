from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from kumocore.errors import ConfigError
from kumocore.mail.address import AddressError
from kumocore.mail.headers import HeaderError
from kumocore.mail.ids import is_message_id
from kumocore.mail.message import Message, SpoolRecordError

RAW = (
    b"From: =?utf-8?q?Andr=C3=A9?= <andre@Example.com>\r\n"
    b"To: Bob <bob@example.net>, carol@example.net\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= menu\r\n"
    b"X-Campaign-ID: 12345\r\n"
    b"X-Mailer: foobar\r\n"
    b"x-mailer: second\r\n"
    b"\r\n"
    b"X-Not-A-Header: body text\r\n"
)


def make(data: bytes = RAW, **kw: Any) -> Message:
    return Message("<sender@example.org>", "<Bob@Example.NET>", data, **kw)


class FakeSigner:
    def __init__(self, header: bytes) -> None:
        self.header = header
        self.seen: list[bytes] = []

    def sign(self, data: bytes) -> bytes:
        self.seen.append(data)
        return self.header


def test_new_message_gets_an_id_creation_time_and_parsed_envelope() -> None:
    before = time.time()
    msg = make()
    assert is_message_id(msg.id)
    assert before <= msg.created <= time.time()
    assert (msg.sender.email, msg.recipient.email) == ("sender@example.org", "Bob@example.net")
    assert (msg.sender_domain, msg.recipient_domain) == ("example.org", "example.net")
    assert msg.num_attempts == 0 and msg.due is None
    assert msg.size == len(RAW) and msg.get_data() == RAW


def test_null_sender_is_accepted_but_null_recipient_is_not() -> None:
    assert Message("<>", "a@b.com", b"").sender.email == ""
    with pytest.raises(AddressError, match="null address not allowed"):
        Message("a@b.com", "<>", b"")


def test_header_lookups_are_case_insensitive_and_decoded() -> None:
    msg = make()
    assert msg.get_first_named_header_value("SUBJECT") == "café menu"
    assert msg.get_first_named_header_value("x-mailer") == "foobar"
    assert msg.get_all_named_header_values("X-Mailer") == ["foobar", "second"]
    assert msg.get_first_named_header_value("Missing") is None
    assert msg.get_all_named_header_values("Missing") == []
    assert msg.get_all_headers()[0] == ("From", "André <andre@Example.com>")


def test_from_and_to_headers_give_address_lists() -> None:
    msg = make()
    sender = msg.from_header()
    assert sender is not None
    assert (sender.name, sender.user, sender.domain) == ("André", "andre", "example.com")
    to = msg.to_header()
    assert to is not None
    assert [a.email for a in to.list] == ["bob@example.net", "carol@example.net"]
    assert msg.get_address_header("Cc") is None


def test_setting_data_invalidates_the_cached_headers() -> None:
    msg = make()
    assert msg.get_first_named_header_value("Subject") == "café menu"
    msg.data = b"Subject: new\r\n\r\nbody"
    assert msg.get_first_named_header_value("Subject") == "new"
    msg.set_data("Subject: from lua\r\n\r\nbody")
    assert msg.get_first_named_header_value("subject") == "from lua"


def test_prepend_append_and_remove_headers_edit_the_data() -> None:
    msg = make()
    msg.prepend_header("Received", "from here")
    msg.append_header("X-Last", "Grüße", encode=True)
    assert msg.data.startswith(b"Received: from here\r\nFrom:")
    assert b"X-Last: =?utf-8?" in msg.data
    assert msg.get_first_named_header_value("x-last") == "Grüße"
    msg.remove_all_named_headers("x-MAILER")
    assert msg.get_all_named_header_values("X-Mailer") == []
    assert msg.data.endswith(b"\r\n\r\nX-Not-A-Header: body text\r\n")


def test_import_x_headers_copies_all_x_headers_into_meta_and_the_last_duplicate_wins() -> None:
    msg = make()
    msg.set_meta("x_mailer", "old")
    msg.import_x_headers()
    # RAW has X-Mailer: foobar then x-mailer: second; KumoMTA keeps the last one.
    assert msg.meta == {"x_campaign_id": "12345", "x_mailer": "second"}


def test_import_x_headers_with_an_empty_name_list_imports_every_x_header() -> None:
    msg = make()
    msg.import_x_headers([])
    assert msg.meta == {"x_campaign_id": "12345", "x_mailer": "second"}


def test_import_x_headers_with_names_imports_only_those_present() -> None:
    msg = make()
    msg.import_x_headers(["x-campaign-id", "Subject", "X-Absent"])
    assert msg.meta == {"x_campaign_id": "12345", "subject": "café menu"}
    msg.import_x_headers(["X-MAILER"])
    assert msg.meta["x_mailer"] == "second"


def test_remove_x_headers_removes_all_or_the_named_ones_but_never_body_text() -> None:
    msg = make()
    msg.remove_x_headers(["x-campaign-id"])
    assert msg.get_all_named_header_values("X-Mailer") == ["foobar", "second"]
    assert msg.get_first_named_header_value("X-Campaign-ID") is None
    msg.remove_x_headers()
    assert [n for n, _ in msg.get_all_headers()] == ["From", "To", "Subject"]
    assert msg.data.endswith(b"X-Not-A-Header: body text\r\n")


def test_dkim_sign_prepends_the_signers_header_computed_over_current_data() -> None:
    msg = make()
    signer = FakeSigner(b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; b=abc\r\n")
    msg.dkim_sign(signer)
    assert signer.seen == [RAW]
    assert msg.data == signer.header + RAW
    assert msg.get_first_named_header_value(
        "dkim-signature",
    ).startswith("v=1;")  # type: ignore[union-attr]


def test_dkim_sign_refuses_a_signer_that_returns_something_else() -> None:
    with pytest.raises(ValueError, match="not a DKIM-Signature header"):
        make().dkim_sign(FakeSigner(b"X-Other: 1\r\n"))


def test_meta_accepts_json_values_and_returns_defaults_for_missing_keys() -> None:
    msg = make()
    msg.set_meta("tenant", "acme")
    msg.set_meta("n", 3)
    msg.set_meta("nested", {"a": [1, 2.5, True, None, ("t", "u")]})
    assert msg.get_meta("tenant") == "acme"
    assert msg.get_meta("nested") == {"a": [1, 2.5, True, None, ["t", "u"]]}
    assert msg.get_meta("missing") is None
    assert msg.get_meta("missing", "dflt") == "dflt"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (object(), "object is not JSON-serialisable"),
        ({1: "a"}, "keys must be strings"),
        (float("nan"), "not representable"),
        (2**70, "64 bits"),
        ({"x": [b"\xff"]}, r"meta 'k'.x\[0\]: binary string \(not UTF-8\)"),
        ({"f": print}, "meta 'k'.f: function is not JSON-serialisable"),
        ({1, 2}, "set is not JSON"),
    ],
)
def test_set_meta_refuses_values_that_do_not_survive_json(value: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"^msg:set_meta: .*{problem}"):
        make().set_meta("k", value)


@pytest.mark.parametrize(("key", "kind"), [(None, "nil"), (1, "number"), (["k"], "table")])
def test_a_meta_key_that_is_not_a_string_is_refused_by_name_and_lua_type(
    key: object, kind: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^msg:set_meta: KEY must be a string, got {kind}$"):
        make().set_meta(key, "v")  # type: ignore[arg-type]
    if kind == "table":  # a dict lookup with an unhashable key
        with pytest.raises(ConfigError, match=r"^msg:get_meta: KEY must be a string, got table$"):
            make().get_meta(key)  # type: ignore[arg-type]


def test_spool_round_trip_preserves_envelope_meta_and_schedule() -> None:
    msg = make(meta={"tenant": "acme", "extra": {"k": [1, 2]}}, num_attempts=3, due=1.5e9)
    meta = msg.meta_bytes()
    assert b" " not in meta  # compact
    assert orjson.loads(meta)["v"] == 1
    back = Message.from_spool(msg.id, meta, msg.data)
    assert (back.id, back.sender, back.recipient) == (msg.id, msg.sender, msg.recipient)
    assert (back.meta, back.created, back.num_attempts, back.due) == (
        msg.meta,
        msg.created,
        3,
        1.5e9,
    )
    assert back.data == msg.data


def test_a_message_recovered_without_its_body_still_knows_its_size() -> None:
    msg = make()
    back = Message.from_spool(msg.id, msg.meta_bytes(), b"")
    assert (back.data, back.size) == (b"", len(RAW))


def test_spool_round_trip_of_a_null_sender() -> None:
    msg = Message("<>", "a@b.com", b"")
    assert Message.from_spool(msg.id, msg.meta_bytes(), b"").sender.is_null


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        (b"\x00garbage", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v": 99}', "unsupported meta version 99"),
        (b'{"v": 1, "recipient": "a@b.com"}', "missing field 'sender'"),
        (
            b'{"v":1,"sender":"","recipient":"a@b.com","meta":[],"created":1,"num_attempts":0}',
            "field 'meta' has the wrong type",
        ),
        (
            b'{"v":1,"sender":"bad address@x.com","recipient":"a@b.com","meta":{},"created":1,'
            b'"num_attempts":0}',
            "space in local part",
        ),
        (
            b'{"v":1,"sender":"","recipient":"a@b.com","meta":{},"created":"x","num_attempts":0}',
            "field 'created' has the wrong type",
        ),
    ],
)
def test_corrupt_spool_meta_raises_spool_record_error_naming_the_id(
    meta: bytes, problem: str
) -> None:
    with pytest.raises(SpoolRecordError, match=problem) as info:
        Message.from_spool("0" * 32, meta, b"")
    assert info.value.id == "0" * 32
    assert "0" * 32 in str(info.value)


def test_malformed_headers_surface_as_header_error_on_lookup() -> None:
    msg = make(b"not a header line\r\n\r\nbody")
    with pytest.raises(HeaderError, match="malformed header line 1"):
        msg.get_first_named_header_value("Subject")


def test_release_data_drops_the_body_but_keeps_its_size() -> None:
    msg = make()
    assert msg.get_first_named_header_value("Subject") == "café menu"
    msg.release_data()
    assert msg.data == b""
    assert msg.size == len(RAW)
    assert msg.get_first_named_header_value("Subject") is None
    msg.data = RAW
    assert msg.get_first_named_header_value("Subject") == "café menu"
