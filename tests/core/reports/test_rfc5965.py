"""ARF (RFC 5965) parsing into KumoMTA's feedback_report object."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kumocore.reports import ReportError, parse_rfc5965

DATA = Path(__file__).parent / "data"

KUMO_FIELDS = {
    "feedback_type",
    "user_agent",
    "version",
    "arrival_date",
    "incidents",
    "original_envelope_id",
    "original_mail_from",
    "reporting_mta",
    "source_ip",
    "authentication_results",
    "original_rcpto_to",
    "reported_domain",
    "reported_uri",
    "extensions",
    "original_message",
    "supplemental_trace",
}


def arf(fields: str, original: str = "From: a@example.com\r\n\r\nbody\r\n") -> bytes:
    return (
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: message/feedback-report\r\n\r\n{fields}\r\n"
        f"--b\r\nContent-Type: message/rfc822\r\n\r\n{original}--b--\r\n"
    ).encode()


MINIMAL = "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"


def trace_header(payload: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def test_yahoo_report_fills_every_kumomta_field() -> None:
    report = parse_rfc5965((DATA / "yahoo_arf.eml").read_bytes())
    assert report is not None
    assert set(report) == KUMO_FIELDS
    assert report["feedback_type"] == "abuse"
    assert report["user_agent"] == "Yahoo!-Mail-Feedback/2.0"
    assert report["version"] == "1"
    # No Arrival-Date: the older Received-Date stands in, rendered as RFC 3339.
    assert report["arrival_date"] == "2024-05-16T07:58:12Z"
    assert report["incidents"] == 1
    assert report["original_mail_from"] == "bounces+77aa@bounce.examplecorp.com"
    assert report["original_rcpto_to"] == ["someone@yahoo.com"]
    assert report["reporting_mta"] == {"mta_type": "dns", "name": "mta1030.mail.ne1.yahoo.com"}
    assert report["source_ip"] == "198.51.100.10"
    assert report["reported_domain"] == ["examplecorp.com", "bounce.examplecorp.com"]
    assert report["reported_uri"] == ["https://click.examplecorp.com/u/77aa"]
    assert report["authentication_results"] == [
        "mta1030.mail.ne1.yahoo.com; dkim=pass (ok) header.i=@examplecorp.com "
        "header.s=s2024; spf=pass smtp.mailfrom=bounce.examplecorp.com"
    ]
    assert report["extensions"] == {"x-yahoo-cfl-id": ["5b3c1d2e-93851"]}
    assert report["original_message"].startswith("Received: from mta1.examplecorp.com")
    json.dumps(report)  # the log record embeds it as JSON


def test_folded_kumoref_header_yields_the_supplemental_trace() -> None:
    report = parse_rfc5965((DATA / "yahoo_arf.eml").read_bytes())
    assert report is not None
    assert report["supplemental_trace"] == {
        "recipient": "someone@yahoo.com",
        "tenant": "examplecorp",
        "campaign": "spring-sale",
    }


def test_minimal_report_has_empty_lists_and_nones() -> None:
    report = parse_rfc5965(arf(MINIMAL))
    assert report is not None
    assert report["original_rcpto_to"] == [] and report["reported_domain"] == []
    assert report["arrival_date"] is None and report["reporting_mta"] is None
    assert report["supplemental_trace"] is None
    # The CRLF before the closing boundary belongs to the boundary, not to the body.
    assert report["original_message"] == "From: a@example.com\n\nbody"


def test_base64_x_header_without_our_marker_is_not_a_trace() -> None:
    original = f"X-Other: {trace_header({'recipient': 'x@example.com'})}\r\n\r\nbody\r\n"
    report = parse_rfc5965(arf(MINIMAL, original))
    assert report is not None and report["supplemental_trace"] is None


def test_trace_is_found_in_a_headers_only_returned_part() -> None:
    value = trace_header({"_@_": "\\_/", "tenant": "t1"})
    raw = arf(MINIMAL, f"X-KumoRef: {value}\r\nSubject: hi\r\n\r\n").replace(
        b"message/rfc822", b"text/rfc822-headers"
    )
    report = parse_rfc5965(raw)
    assert report is not None and report["supplemental_trace"] == {"tenant": "t1"}


def test_unparseable_arrival_date_is_dropped_not_fatal() -> None:
    report = parse_rfc5965(arf(MINIMAL + "Arrival-Date: sometime last week\r\n"))
    assert report is not None and report["arrival_date"] is None


@pytest.mark.parametrize("name", ["gmail_dsn.eml", "postfix_dsn.eml"])
def test_delivery_status_report_is_not_arf(name: str) -> None:
    assert parse_rfc5965((DATA / name).read_bytes()) is None


def test_plain_message_is_not_arf() -> None:
    assert parse_rfc5965(b"Subject: hello\r\n\r\nhi\r\n") is None


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ("User-Agent: x/1\r\nVersion: 1\r\n", "feedback-type"),
        ("Feedback-Type: abuse\r\nVersion: 1\r\n", "user-agent"),
        ("Feedback-Type: abuse\r\nUser-Agent: x/1\r\n", "version"),
        (MINIMAL + "Incidents: many\r\n", "incidents"),
        (MINIMAL + "Incidents: \u00b2\r\n", "incidents"),
        (MINIMAL + "Source-IP: 192.0.2.1\r\nSource-IP: 192.0.2.2\r\n", "source-ip"),
    ],
)
def test_malformed_feedback_report_raises_report_error_naming_the_field(
    fields: str, error: str
) -> None:
    with pytest.raises(ReportError, match=error):
        parse_rfc5965(arf(fields))


def test_arf_without_feedback_report_part_raises_report_error() -> None:
    raw = (
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nspam!\r\n--b--\r\n"
    )
    with pytest.raises(ReportError, match="no message/feedback-report part"):
        parse_rfc5965(raw)
