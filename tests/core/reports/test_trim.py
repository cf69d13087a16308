"""A received report is cut to the parts its records need before it is parsed: the parse
results the records use are unchanged, and the bounds refuse oversized report parts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kumocore.reports import parse_rfc3464, parse_rfc5965
from kumocore.reports.trim import (
    MAX_NEAR_MISSES,
    MAX_REPORT_PART,
    MAX_RETURNED_PART,
    NotAReport,
    trim_report,
)
from tests.core.reports.test_rfc5965 import arf

DATA = Path(__file__).parent / "data"
CONFORMANCE = Path(__file__).parents[2] / "conformance" / "data"
MIB = 1024 * 1024

STATUS = (
    "Reporting-MTA: dns; mx.remote.example\r\n\r\n"
    "Final-Recipient: rfc822; gone@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
)
FEEDBACK = "Feedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\n"


def dsn(status: str = STATUS, returned: str = "Subject: hi\r\n", boundary: str = "b1") -> bytes:
    return (
        "From: <mailer-daemon@mx.remote.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;"
        f' boundary="{boundary}"\r\n\r\n'
        f"preamble\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{status}\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{returned}\r\n"
        f"--{boundary}--\r\nepilogue\r\n"
    ).encode()


@pytest.mark.parametrize("name", ["gmail_dsn.eml", "postfix_dsn.eml"])
def test_a_trimmed_sample_dsn_parses_to_the_same_report(name: str) -> None:
    data = (DATA / name).read_bytes()
    assert parse_rfc3464(trim_report(data)) == parse_rfc3464(data)


def test_a_trimmed_dsn_with_several_recipients_parses_to_the_same_report() -> None:
    data = (CONFORMANCE / "dsn_two_failed_one_delayed.eml").read_bytes()
    report = parse_rfc3464(trim_report(data))
    assert report is not None and len(report.per_recipient) == 3
    assert report == parse_rfc3464(data)


def test_a_trimmed_sample_arf_parses_to_the_same_feedback_report() -> None:
    data = (DATA / "yahoo_arf.eml").read_bytes()
    assert parse_rfc5965(trim_report(data)) == parse_rfc5965(data)


def test_a_report_with_lf_line_endings_parses_the_same_after_trimming() -> None:
    data = dsn().replace(b"\r\n", b"\n")
    report = parse_rfc3464(trim_report(data))
    assert report is not None and report.per_recipient[0].recipient == "gone@remote.example"
    assert report == parse_rfc3464(data)


def test_a_20_mib_dsn_is_cut_to_its_status_part_and_gives_the_same_records() -> None:
    filler = ("X-Filler: " + "f" * 68 + "\r\n") * (20 * MIB // 80)
    data = dsn(returned=filler)
    trimmed = trim_report(data)
    assert len(trimmed) < 1024
    full, cut = parse_rfc3464(data), parse_rfc3464(trimmed)
    assert full is not None and cut is not None
    assert cut.per_recipient == full.per_recipient
    assert cut.reporting_mta == full.reporting_mta


def test_a_status_part_over_the_bound_is_not_a_report() -> None:
    padding = "X-Pad: " + "p" * 70 + "\r\n"
    status = STATUS + padding * (MAX_REPORT_PART // len(padding) + 1)
    with pytest.raises(NotAReport, match="message/delivery-status part of"):
        trim_report(dsn(status=status))


def test_a_status_part_just_under_the_bound_is_still_parsed() -> None:
    padding = "X-Pad: " + "p" * 70 + "\r\n"
    status = STATUS + padding * ((MAX_REPORT_PART - 2 * len(STATUS)) // len(padding))
    report = parse_rfc3464(trim_report(dsn(status=status)))
    assert report is not None and report.per_recipient[0].action == "failed"


def test_a_large_returned_message_of_an_arf_keeps_its_headers_and_trace() -> None:
    trace = base64.b64encode(json.dumps({"_@_": "\\_/", "recipient": "r@x.example"}).encode())
    body = ("b" * 76 + "\r\n") * (MAX_RETURNED_PART // 78 + 1)
    original = f"From: a@example.com\r\nX-KumoRef: {trace.decode()}\r\n\r\n{body}"
    data = arf(FEEDBACK, original)
    report = parse_rfc5965(trim_report(data))
    assert report is not None
    assert report["supplemental_trace"] == {"recipient": "r@x.example"}
    assert report["original_message"].startswith("From: a@example.com\n")
    assert len(report["original_message"]) < 1024  # the body is left out
    assert {k: v for k, v in report.items() if k != "original_message"} == {
        k: v for k, v in (parse_rfc5965(data) or {}).items() if k != "original_message"
    }


def test_a_returned_message_under_the_bound_is_kept_whole() -> None:
    original = "From: a@example.com\r\n\r\n" + ("b" * 76 + "\r\n") * 1000
    data = arf(FEEDBACK, original)
    assert parse_rfc5965(trim_report(data)) == parse_rfc5965(data)


def test_a_message_that_is_not_a_report_stays_not_a_report() -> None:
    data = b"Content-Type: text/plain\r\n\r\n--b1\r\nContent-Type: message/delivery-status\r\n"
    assert parse_rfc3464(trim_report(data)) is None


def test_a_report_without_its_status_part_is_still_malformed() -> None:
    data = dsn().replace(b"message/delivery-status", b"text/plain")
    from kumocore.reports import ReportError

    with pytest.raises(ReportError, match="no message/delivery-status part"):
        parse_rfc3464(trim_report(data))


def test_lines_that_only_start_like_the_boundary_are_not_delimiters() -> None:
    returned = "--b1x: not a delimiter\r\n" * 10 + "Subject: hi\r\n"
    report = parse_rfc3464(trim_report(dsn(returned=returned)))
    assert report is not None and report.original_message is not None
    assert report.original_message.count("--b1x") == 10


def test_too_many_near_miss_delimiter_lines_are_not_a_report() -> None:
    returned = "--b1x\r\n" * (MAX_NEAR_MISSES + 1)
    with pytest.raises(NotAReport, match="look like a MIME delimiter"):
        trim_report(dsn(returned=returned))


def test_a_message_head_without_an_end_in_the_bound_is_not_a_report() -> None:
    data = b"Content-Type: multipart/report; boundary=b\r\n" + b"X-A: b\r\n" * (MIB // 8)
    with pytest.raises(NotAReport, match="no header block end"):
        trim_report(data)


def test_a_message_head_of_hundreds_of_kib_is_still_read() -> None:
    data = b"Received: from x\r\n" * (300 * 1024 // 18) + dsn()
    report = parse_rfc3464(trim_report(data))
    assert report is not None and report.per_recipient[0].action == "failed"
