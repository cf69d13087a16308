"""OOB bounces (RFC 3464) and feedback reports (RFC 5965) on log_oob/log_arf domains."""

from __future__ import annotations

import base64
import json

import pytest

from kumocore import Rejection, hookimpl
from kumocore.mail.response import Response
from tests.smtp.conftest import SmtpEnv, StartSmtp

UNTRUSTED = "127.0.0.5"

DSN = (
    "From: Mail Delivery Subsystem <mailer-daemon@mx.remote.example>\r\n"
    "To: bounce@bounces.example\r\n"
    "Subject: Delivery Status Notification (Failure)\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Your message could not be delivered.\r\n"
    "--b1\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Reporting-MTA: dns; mx.remote.example\r\n"
    "\r\n"
    "Final-Recipient: rfc822; gone@remote.example\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
    "Last-Attempt-Date: Tue, 14 May 2024 09:12:44 -0700\r\n"
    "\r\n"
    "Final-Recipient: rfc822; slow@remote.example\r\n"
    "Action: delayed\r\n"
    "Status: 4.2.2\r\n"
    "\r\n"
    "--b1--\r\n"
)

TRACE = base64.b64encode(json.dumps(
    {"_@_": "\\_/", "recipient": "complainer@isp.example"}).encode()).decode()

ARF = (
    "From: feedback@isp.example\r\n"
    "To: fbl@fbl.example\r\n"
    "Subject: complaint\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=feedback-report; boundary="b2"\r\n'
    "\r\n"
    "--b2\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "This is an abuse report.\r\n"
    "--b2\r\n"
    "Content-Type: message/feedback-report\r\n"
    "\r\n"
    "Feedback-Type: abuse\r\n"
    "User-Agent: SomeGenerator/1.0\r\n"
    "Version: 1\r\n"
    "Original-Mail-From: <bounce@bounces.example>\r\n"
    "Original-Rcpt-To: <complainer@isp.example>\r\n"
    "Source-IP: 192.0.2.1\r\n"
    "\r\n"
    "--b2\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    f"X-KumoRef: {TRACE}\r\n"
    "From: news@sender.example\r\n"
    "Subject: our newsletter\r\n"
    "\r\n"
    "buy now\r\n"
    "--b2--\r\n"
)

DOMAINS = {
    "bounces.example": {"log_oob": "LogThenDrop"},
    "relayed-bounces.example": {"log_oob": "LogThenRelay"},
    "fbl.example": {"log_arf": "LogThenDrop"},
    "relayed-fbl.example": {"log_arf": "LogThenRelay"},
}


async def deliver(env: SmtpEnv, recipient: str, body: str) -> str:
    client = await env.session(UNTRUSTED)
    rcpts, final = await client.send_mail("", [recipient], body)
    assert [r.code for r in rcpts] == [250]
    return str(final)


@pytest.mark.parametrize(("domain", "queued"), [
    ("bounces.example", False), ("relayed-bounces.example", True)])
async def test_dsn_logs_one_oob_record_per_failed_recipient(
    start_smtp: StartSmtp, domain: str, queued: bool,
) -> None:
    env = await start_smtp(domains=DOMAINS)
    final = await deliver(env, f"bounce@{domain}", DSN)
    assert final.startswith("250 OK ids=")
    assert len(env.messages) == (1 if queued else 0)
    [oob] = await env.reception.records("OOB")
    assert oob.recipient == "gone@remote.example"
    assert oob.sender == f"bounce@{domain}"
    assert oob.response.to_single_line() == "550 5.1.1 user unknown"
    assert oob.peer_address is not None and oob.peer_address.name == "mx.remote.example"
    assert oob.timestamp == 1715703164.0
    assert (oob.size, oob.num_attempts) == (0, 0)
    receptions = await env.reception.records("Reception")
    assert [r.recipient for r in receptions] == [f"bounce@{domain}"]


@pytest.mark.parametrize(("domain", "queued"), [
    ("fbl.example", False), ("relayed-fbl.example", True)])
async def test_arf_report_logs_a_feedback_record(
    start_smtp: StartSmtp, domain: str, queued: bool,
) -> None:
    env = await start_smtp(domains=DOMAINS)
    final = await deliver(env, f"fbl@{domain}", ARF)
    assert final.startswith("250 OK ids=")
    assert len(env.messages) == (1 if queued else 0)
    [feedback] = await env.reception.records("Feedback")
    report = feedback.feedback_report
    assert report is not None
    assert report["feedback_type"] == "abuse"
    assert report["original_rcpto_to"] == ["complainer@isp.example"]
    assert report["supplemental_trace"]["recipient"] == "complainer@isp.example"
    assert feedback.recipient == f"fbl@{domain}"


async def test_arf_to_an_oob_only_domain_is_not_a_report(start_smtp: StartSmtp) -> None:
    env = await start_smtp(domains=DOMAINS)
    assert await deliver(env, "bounce@bounces.example", ARF) == \
        "550 5.7.1 relaying not permitted"
    assert await env.reception.records("OOB", "Feedback") == []


async def test_relay_host_dsn_to_a_drop_domain_is_still_dropped(start_smtp: StartSmtp) -> None:
    env = await start_smtp(domains=DOMAINS)
    client = await env.session("127.0.0.1")
    _, final = await client.send_mail("", ["bounce@bounces.example"], DSN)
    assert final.code == 250
    assert env.messages == []
    assert len(await env.reception.records("OOB")) == 1


class Classifier:
    @hookimpl
    def kumo_classify_bounce(self, response: Response) -> str:
        return "InvalidRecipient" if response.to_single_line().startswith("550 5.1.1") else \
            "RelayDenied"


async def test_oob_records_are_classified(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Classifier(), domains=DOMAINS)
    await deliver(env, "bounce@bounces.example", DSN)
    [oob] = await env.reception.records("OOB")
    assert oob.bounce_classification == "InvalidRecipient"


class RefuseBounceQueue:
    @hookimpl
    def kumo_get_queue_config(self, domain: str) -> None:
        raise Rejection(451, "4.3.0 no queue for reports today")


async def test_a_refused_report_logs_nothing(start_smtp: StartSmtp) -> None:
    env = await start_smtp(RefuseBounceQueue(), domains=DOMAINS)
    final = await deliver(env, "bounce@relayed-bounces.example", DSN)
    assert final == "451 4.3.0 no queue for reports today"
    assert await env.reception.records("OOB", "Feedback", "Reception") == []
