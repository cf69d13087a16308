from __future__ import annotations

import orjson

from kumocore.logs.record import RecordType, rfc3339_ns
from kumocore.logs.record_builder import make_record
from kumocore.mail.response import Response
from tests.core.logs.fakes import NODEID, FakeMessage, record

KUMOMTA_FIELDS = [
    "type", "id", "sender", "recipient", "queue", "site", "size", "response",
    "peer_address", "timestamp", "event_time", "created", "created_time", "num_attempts",
    "bounce_classification", "egress_pool", "egress_source", "source_address",
    "feedback_report", "meta", "headers", "delivery_protocol", "reception_protocol", "nodeid",
]


def test_json_has_every_kumomta_field_in_kumomta_order() -> None:
    assert list(record().to_json()) == KUMOMTA_FIELDS


def test_json_values_follow_kumomta_shapes() -> None:
    out = record(egress_pool="pool", egress_source="src", delivery_protocol="ESMTP").to_json()
    assert out["type"] == "Delivery"
    assert out["id"] == "d7ef132b5d7711eda8c8001c42e1e7c4"
    assert out["sender"] == "sender@example.com"
    assert out["recipient"] == "rcpt@example.net"
    assert out["size"] == 1234
    assert out["response"] == {
        "code": 250, "enhanced_code": {"class": 2, "subject": 0, "detail": 0},
        "content": "OK", "command": "."}
    assert out["peer_address"] == {"name": "mx.example.net", "addr": "127.0.0.2"}
    assert out["timestamp"] == 1_700_000_100
    assert out["event_time"] == "2023-11-14T22:15:00.500000000Z"
    assert out["created"] == 1_700_000_000
    assert out["created_time"] == "2023-11-14T22:13:20.250000000Z"
    assert out["bounce_classification"] == "Uncategorized"
    assert (out["egress_pool"], out["egress_source"]) == ("pool", "src")
    assert out["source_address"] is None and out["feedback_report"] is None
    assert out["meta"] == {} and out["headers"] == {}
    assert out["nodeid"] == NODEID


def test_reception_defaults_have_empty_site_null_peer_and_null_enhanced_code() -> None:
    msg = FakeMessage(meta={"reception_protocol": "ESMTP"})
    rec = make_record("Reception", msg, queue="example.net",
                      response=Response(250, "OK ids=x", command="."), nodeid=NODEID)
    out = rec.to_json()
    assert out["site"] == "" and out["peer_address"] is None
    assert out["response"]["enhanced_code"] is None
    assert out["reception_protocol"] == "ESMTP"  # taken from meta, as KumoMTA does


def test_optional_tls_provider_and_session_fields_appear_only_when_set() -> None:
    plain = record().to_json()
    assert not {"tls_cipher", "provider_name", "session_id"} & set(plain)
    out = record(tls_cipher="TLS_AES_256_GCM_SHA384", tls_protocol_version="TLSv1.3",
                 tls_peer_subject_name=["CN=mx"], provider_name="google",
                 session_id="5f1b").to_json()
    assert list(out)[len(KUMOMTA_FIELDS):] == [
        "tls_cipher", "tls_protocol_version", "tls_peer_subject_name", "provider_name",
        "session_id"]
    assert out["tls_peer_subject_name"] == ["CN=mx"]


def test_meta_is_copied_so_later_policy_changes_do_not_alter_the_record() -> None:
    msg = FakeMessage(meta={"tenant": "a"})
    rec = record(message=msg)
    msg.meta["tenant"] = "b"
    assert rec.to_json(["tenant"])["meta"] == {"tenant": "a"}


def test_meta_selection_is_exact_case_sensitive_with_trailing_wildcard() -> None:
    msg = FakeMessage(meta={"tenant": "t", "Tenant": "T", "x_a": 1, "x_b": None,
                            "campaign": None, "other": 2})
    meta = record(message=msg).to_json(["tenant", "x_*", "campaign", "missing"])["meta"]
    # exact names skip null/absent values; wildcards take every matching key
    assert meta == {"tenant": "t", "x_a": 1, "x_b": None}


def test_headers_are_not_read_when_no_sink_wants_them() -> None:
    msg = FakeMessage(headers=[("Subject", "hi")])
    rec = record(message=msg)
    assert msg.header_reads == 0
    assert rec.header_pairs == ()
    assert rec.to_json([], ["Subject"])["headers"] == {}


def test_header_capture_keeps_only_pairs_some_sink_selects() -> None:
    msg = FakeMessage(headers=[("Subject", "hi"), ("X-Tag", "1"), ("Received", "r" * 500)])
    rec = record(message=msg, header_names=["subject", "X-*"])
    assert rec.header_pairs == (("Subject", "hi"), ("X-Tag", "1"))


def test_header_selection_is_case_insensitive_keyed_by_message_spelling() -> None:
    msg = FakeMessage(headers=[
        ("Subject", "hi"), ("X-Campaign", "c1"), ("x-tag", "1"), ("X-Tag", "2"), ("To", "t")])
    rec = record(message=msg, header_names=["*"])
    assert rec.to_json([], ["SUBJECT", "x-*"])["headers"] == {
        "Subject": "hi", "X-Campaign": "c1", "x-tag": ["1", "2"]}
    assert rec.to_json([], ["to"])["headers"] == {"To": "t"}


def test_to_json_bytes_is_compact_json_of_to_json() -> None:
    rec = record(message=FakeMessage(meta={"tenant": "t"}))
    data = rec.to_json_bytes(["tenant"])
    assert orjson.loads(data) == rec.to_json(["tenant"])
    assert b"\n" not in data


def test_record_type_accepts_every_kumomta_type_name() -> None:
    for name in ["Reception", "Delivery", "Bounce", "TransientFailure", "Expiration",
                 "AdminBounce", "OOB", "Feedback", "Rejection", "AdminRebind", "Delayed"]:
        assert record(name).to_json()["type"] == name
    assert RecordType("OOB") is RecordType.OOB


def test_rfc3339_ns_has_nine_fraction_digits() -> None:
    assert rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z"


def test_real_message_satisfies_message_like() -> None:
    from kumocore.mail.message import Message

    msg = Message("a@example.com", "b@example.net", b"Subject: hi\r\nX-A: 1\r\n\r\nbody\r\n",
                  meta={"tenant": "t"})
    rec = make_record("Reception", msg, queue="example.net", response=Response(250, "OK"),
                      nodeid=NODEID, header_names=["Subject"])
    out = rec.to_json(["tenant"], ["subject"])
    assert (out["sender"], out["recipient"]) == ("a@example.com", "b@example.net")
    assert out["headers"] == {"Subject": "hi"} and out["meta"] == {"tenant": "t"}
    assert out["size"] == msg.size


def test_peer_and_source_address_may_be_given_as_plain_values() -> None:
    out = record(peer_address={"name": "mx", "addr": "127.0.0.9"},
                 source_address="127.0.0.1:4567").to_json()
    assert out["peer_address"] == {"name": "mx", "addr": "127.0.0.9"}
    assert out["source_address"] == {"address": "127.0.0.1:4567"}
