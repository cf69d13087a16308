"""``kumo.generate_rfc3464_message``: KumoMTA's arguments and report format, from Lua and
Python, and the rules that keep DSNs from looping (null sender in, nothing out)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import pytest
from kumocore_lua_policy import LuaPolicyPlugin

from kumocore.errors import ConfigError
from kumocore.reports.dsn import generate_report
from tests.reception.harness import make_reception

from .support import Recorder

# 2003-07-01 08:52:37 and 10:52:37 UTC, the dates of KumoMTA's documented sample.
CREATED, LAST = 1057049557, 1057056757
PARAMS = {"include_original_message": "FullContent", "enable_bounce": True,
          "enable_expiration": True, "stable_content": True,
          "reporting_mta": {"mta_type": "dns", "name": "mta1.example.com"}}
ORIGINAL = (b'Content-Type: text/plain;\r\n  charset="us-ascii"\r\n'
            b"Subject: Hello!\r\n\r\nhello there\r\n")


def bounce(**changes: Any) -> dict[str, Any]:
    record = {
        "type": "Bounce", "sender": "sender@sender.example.com",
        "recipient": "recip@target.example.com", "created": CREATED, "timestamp": LAST,
        "delivery_protocol": "ESMTP",
        "response": {"code": 550, "enhanced_code": {"class": 5, "subject": 7, "detail": 1},
                     "content": "no thanks", "command": "."},
        "peer_address": {"name": "target.example.com", "addr": "42.42.42.42"},
    }
    record.update(changes)
    return record


def test_bounce_report_matches_kumomtas_documented_layout() -> None:
    report = generate_report(PARAMS, ORIGINAL, bounce())
    assert report is not None
    text = report.decode()
    head, _, body = text.partition("\r\n\r\n")
    assert head.split("\r\n") == [
        "Content-Type: multipart/report;", '  boundary="report-boundary";',
        '  report-type="delivery-status"', "Subject: Returned mail", "Mime-Version: 1.0",
        "Message-ID: <UUID@mta1.example.com>", "To: sender@sender.example.com",
        "From: Mail Delivery Subsystem <mailer-daemon@mta1.example.com>"]
    assert "The message was received at Tue, 1 Jul 2003 08:52:37 +0000\r\n" \
        "from sender@sender.example.com and addressed to recip@target.example.com.\r\n" \
        "While communicating with target.example.com (42.42.42.42):\r\n" \
        "Response: 550 5.7.1 no thanks\r\n" in body
    assert "Reporting-MTA: dns; mta1.example.com\r\n" \
        "Arrival-Date: Tue, 1 Jul 2003 08:52:37 +0000\r\n\r\n" \
        "Final-Recipient: rfc822;recip@target.example.com\r\n" \
        "Action: failed\r\nStatus: 5.7.1 no thanks\r\n" \
        "Remote-MTA: dns; target.example.com\r\n" \
        "Diagnostic-Code: smtp; 550 5.7.1 no thanks\r\n" \
        "Last-Attempt-Date: Tue, 1 Jul 2003 10:52:37 +0000\r\n" in body
    assert "Content-Type: message/rfc822\r\n\r\n" + ORIGINAL.decode() in body
    assert text.endswith("--report-boundary--\r\n")
    parsed = email.message_from_bytes(report, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert [p.get_content_type() for p in parsed.iter_parts()] == [
        "text/plain", "message/delivery-status", "message/rfc822"]


def test_expiration_report_quotes_long_lines_and_headers_only_keeps_no_body() -> None:
    long = ("Next delivery time would be at SOME TIME which exceeds the expiry time "
            "EXPIRES configured via set_scheduling")
    record = bounce(type="Expiration", delivery_protocol=None, peer_address=None,
                    response={"code": 551, "content": long, "command": None,
                              "enhanced_code": {"class": 5, "subject": 4, "detail": 7}})
    report = generate_report({**PARAMS, "include_original_message": "HeadersOnly"},
                             ORIGINAL, record)
    assert report is not None
    parsed = email.message_from_bytes(report, policy=email.policy.default)
    text, _status, headers = parsed.iter_parts()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert f"Status: 551 5.4.7 {long}" in text.get_content()
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"hello there" not in report and b"Subject: Hello!" in report


@pytest.mark.parametrize(("changes", "params"), [
    ({"sender": ""}, {}),                                    # never to the null sender
    ({"delivery_protocol": "Maildir"}, {}),                  # Bounce only for ESMTP
    ({}, {"enable_bounce": False}),                          # not enabled
    ({"type": "Expiration"}, {"enable_expiration": False}),
    ({"type": "TransientFailure"}, {}),
    ({"type": "Delivery"}, {}),
])
def test_no_report_when_kumomta_would_make_none(
    changes: dict[str, Any], params: dict[str, Any]
) -> None:
    assert generate_report({**PARAMS, **params}, ORIGINAL, bounce(**changes)) is None


def test_bad_params_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="include_original_message must be one of"):
        generate_report({**PARAMS, "include_original_message": "All"}, None, bounce())
    with pytest.raises(ConfigError, match="reporting_mta must be a table"):
        generate_report({**PARAMS, "reporting_mta": "mta1"}, None, bounce())
    with pytest.raises(ConfigError, match="unknown key 'enable_bounces'"):
        generate_report({**PARAMS, "enable_bounces": True}, None, bounce())


LUA_POLICY = """\
local kumo = require 'kumo'
kumo.on('smtp_server_ehlo', function(domain, conn_meta)
  local orig = kumo.make_message('sender@sender.example.com', 'recip@target.example.com',
    'Subject: Hello!\\r\\n\\r\\nhello there\\r\\n')
  local record = {
    type = 'Bounce', sender = 'sender@sender.example.com',
    recipient = 'recip@target.example.com', created = 1057049557, timestamp = 1057056757,
    delivery_protocol = 'ESMTP',
    response = { code = 550, content = 'no thanks',
                 enhanced_code = { class = 5, subject = 7, detail = 1 } },
  }
  local params = {
    include_original_message = 'FullContent', enable_bounce = true,
    reporting_mta = { mta_type = 'dns', name = 'mta1.example.com' },
  }
  local dsn = kumo.generate_rfc3464_message(params, orig, record)
  kumo.inject_message(dsn)
  record.sender = ''
  kumo.test.mark(kumo.generate_rfc3464_message(params, nil, record) == nil)
end)
"""


async def test_lua_policy_generates_and_injects_a_dsn_with_the_null_sender(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.lua"
    path.write_text(LUA_POLICY)
    recorder = Recorder()
    reception = await make_reception(
        policy_file=str(path),
        plugins=(("lua_policy", LuaPolicyPlugin()), ("recorder", recorder)))
    try:
        await reception.runtime.hooks.smtp_server_ehlo("client.example", {})
        [dsn] = reception.messages
        assert str(dsn.sender) == "" and dsn.recipient.email == "sender@sender.example.com"
        assert dsn.get_first_named_header_value("Subject") == "Returned mail"
        assert b"Status: 5.7.1 no thanks" in dsn.data and b"hello there" in dsn.data
        assert recorder.marks == [True]
    finally:
        await reception.close()
