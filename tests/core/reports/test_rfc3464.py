"""RFC 3464 DSN parsing on realistic Gmail- and Postfix-style bounces, and malformed ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kumocore.reports import (
    DiagnosticCode,
    RemoteMta,
    ReportError,
    parse_rfc3464,
)

DATA = Path(__file__).parent / "data"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def dsn(status_part: str, *, report_type: str = "delivery-status") -> bytes:
    """A minimal multipart/report around ``status_part`` (the delivery-status body)."""
    return (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\nIt bounced.\r\n"
        f"--b\r\nContent-Type: message/delivery-status\r\n\r\n{status_part}\r\n--b--\r\n"
    ).encode()


FAILED = "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; a@example.org\r\n"


def test_gmail_bounce_reports_failed_recipient_with_smtp_diagnostic() -> None:
    report = parse_rfc3464(load("gmail_dsn.eml"))
    assert report is not None
    assert report.reporting_mta == RemoteMta("dns", "googlemail.com")
    assert report.received_from_mta == RemoteMta("dns", "mta1.examplecorp.com")
    assert report.arrival_date == datetime(2024, 5, 14, 16, 12, 40, tzinfo=UTC)
    assert report.extensions == {
        "x-original-message-id": ["<20240514161240.4f1c9e2a@mta1.examplecorp.com>"]
    }
    [entry] = report.per_recipient
    assert entry.action == "failed"
    assert str(entry.status) == "5.1.1"
    assert entry.status.to_enhanced_code() == {"class": 5, "subject": 1, "detail": 1}
    assert entry.recipient == "nosuchuser@example.org"
    assert entry.original_recipient is None
    assert entry.remote_mta is not None and entry.remote_mta.name.startswith("mx.example.org.")
    assert entry.last_attempt_date == datetime(2024, 5, 14, 16, 12, 44, tzinfo=UTC)
    assert entry.diagnostic_code is not None
    # The folded Diagnostic-Code is unfolded into one line.
    assert entry.diagnostic_code.smtp_reply() == (
        550,
        "5.1.1 <nosuchuser@example.org>: Recipient address rejected: "
        "User unknown in virtual mailbox table",
    )


def test_gmail_bounce_keeps_the_returned_message() -> None:
    report = parse_rfc3464(load("gmail_dsn.eml"))
    assert report is not None and report.original_message is not None
    assert report.original_message.startswith("Return-Path: <bounces+a1b2c3@")
    assert "Subject: Your May newsletter\n" in report.original_message
    assert report.original_message.endswith(
        "Hello! Here is what happened at Example Corp in May.\n"
    )


def test_postfix_bounce_has_one_entry_per_recipient_block() -> None:
    report = parse_rfc3464(load("postfix_dsn.eml"))
    assert report is not None
    assert report.reporting_mta == RemoteMta("dns", "mail.example.net")
    assert report.extensions["x-postfix-queue-id"] == ["4VfK2X0s1Hz9sRk"]
    failed, delayed = report.per_recipient
    assert (failed.action, str(failed.status)) == ("failed", "5.2.2")
    # Original-Recipient wins: it is the address the sender actually used.
    assert failed.recipient == "Info@Example.net"
    assert failed.final_recipient.recipient == "info@example.net"
    assert (delayed.action, str(delayed.status)) == ("delayed", "4.4.1")
    assert delayed.will_retry_until == datetime(2024, 5, 19, 20, 5, 43, tzinfo=UTC)


def test_postfix_bounce_returns_headers_only_part_as_original_message() -> None:
    report = parse_rfc3464(load("postfix_dsn.eml"))
    assert report is not None and report.original_message is not None
    assert report.original_message.endswith("Date: Tue, 14 May 2024 20:05:40 +0000\n")
    assert "\r" not in report.original_message


def test_crlf_and_lf_line_endings_parse_identically() -> None:
    lf = load("postfix_dsn.eml")
    assert parse_rfc3464(lf.replace(b"\n", b"\r\n")) == parse_rfc3464(lf)


@pytest.mark.parametrize(
    ("diagnostic", "reply"),
    [
        (DiagnosticCode("smtp", "550 5.1.1 no such user"), (550, "5.1.1 no such user")),
        (DiagnosticCode("SMTP", "no code here"), (550, "no code here")),
        (DiagnosticCode("smtp", "421"), (550, "421")),
        (DiagnosticCode("X-Postfix", "host not found"), (550, "")),
    ],
)
def test_smtp_reply_follows_kumomta_oob_rules(
    diagnostic: DiagnosticCode, reply: tuple[int, str]
) -> None:
    assert diagnostic.smtp_reply() == reply


def test_feedback_report_is_not_a_dsn() -> None:
    assert parse_rfc3464(load("yahoo_arf.eml")) is None


def test_plain_message_is_not_a_dsn() -> None:
    assert parse_rfc3464(b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n") is None


def test_report_without_report_type_is_a_dsn_when_it_has_a_status_part() -> None:
    raw = dsn(FAILED + "Action: failed\r\nStatus: 5.0.0\r\n").replace(
        b" report-type=delivery-status;", b""
    )
    report = parse_rfc3464(raw)
    assert report is not None and report.per_recipient[0].status.status_class == 5


def test_global_delivery_status_part_is_parsed() -> None:
    raw = dsn(FAILED + "Action: failed\r\nStatus: 5.1.1\r\n").replace(
        b"message/delivery-status", b"message/global-delivery-status"
    )
    report = parse_rfc3464(raw)
    assert report is not None
    assert [e.recipient for e in report.per_recipient] == ["a@example.org"]


@pytest.mark.parametrize(
    ("status_part", "error"),
    [
        ("Final-Recipient: rfc822; a@example.org\r\n", "reporting-mta"),
        (FAILED + "Status: 5.1.1\r\n", "action"),
        (FAILED + "Action: bounced\r\nStatus: 5.1.1\r\n", "Action: 'bounced'"),
        (FAILED + "Action: failed\r\n", "status"),
        (FAILED + "Action: failed\r\nStatus: 550\r\n", "Status: '550'"),
        (
            FAILED + "Action: failed\r\nStatus: 5.1.1\r\nStatus: 5.1.2\r\n",
            "status must appear once",
        ),
        (
            FAILED + "Action: failed\r\nStatus: 5.1.1\r\nLast-Attempt-Date: yesterday\r\n",
            "last-attempt-date",
        ),
        (
            "Reporting-MTA: mx.example.net\r\n\r\nFinal-Recipient: rfc822; a@example.org\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n",
            "reporting-mta: expected 'type; value'",
        ),
    ],
)
def test_malformed_dsn_raises_report_error_naming_the_field(status_part: str, error: str) -> None:
    with pytest.raises(ReportError, match=error):
        parse_rfc3464(dsn(status_part))


def test_dsn_without_status_part_raises_report_error() -> None:
    raw = (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nIt bounced.\r\n--b--\r\n"
    )
    with pytest.raises(ReportError, match="no message/delivery-status part"):
        parse_rfc3464(raw)
