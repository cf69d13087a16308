"""Delivery status notifications end to end, the way KumoMTA documents them: a real
``kumocore serve`` runs the ``log_hooks:new_disposition_hook`` example of
``kumo.generate_rfc3464_message`` (Lua), or its Python equivalent. Mail whose recipient's
MX answers 5xx (Bounce) or that outlives ``max_age`` (Expiration) makes a DSN that is
delivered, with the null sender, to a second recording sink: the MX of the original
envelope sender's domain. Null-sender mail, a DSN that bounces itself, transient failures
and disabled report kinds make none."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bench.common.serve_process import ServeProcess, free_port
from bench.common.sink import Received, RecordingSink
from bench.common.smtp_client import RawSmtpClient
from kumocore.logs.reader import iter_records

pytestmark = pytest.mark.slow

# Routing shared by both policies: target.example's MX is one sink (it refuses
# "permfail" and defers "tempfail" recipients), sender.example's MX is another, and
# expire.example's MX is a closed port (its mail expires after a few seconds).
LUA_POLICY = '''
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'

-- KumoMTA's documented example; the PARAMS differ per test sender (its local part).
local INCLUDE = {{ full = 'FullContent', headers = 'HeadersOnly', none = 'No',
                  expired = 'FullContent' }}

local function ndr_generator(msg, log_record)
  local who = log_record.sender:match('^([^@]+)@') or ''
  local params = {{
    include_original_message = INCLUDE[who] or 'FullContent',
    enable_expiration = who ~= 'noexpire',
    enable_bounce = who ~= 'nobounce',
    reporting_mta = {{
      mta_type = 'dns',
      name = 'mta1.example.com',
    }},
  }}
  local bounce_msg = kumo.generate_rfc3464_message(params, msg, log_record)
  if bounce_msg then
    local ok, err = pcall(kumo.inject_message, bounce_msg)
    if not ok then
      kumo.log_error('failed to inject NDR: ', err)
    end
  end
end

log_hooks:new_disposition_hook {{
  name = 'ndr_generator',
  hook = ndr_generator,
}}

kumo.on('init', function()
  kumo.define_spool {{ name = 'data', path = '{spool}/data', kind = 'RocksDB' }}
  kumo.define_spool {{ name = 'meta', path = '{spool}/meta', kind = 'RocksDB' }}
  kumo.configure_local_logs {{ log_dir = '{logs}', max_segment_duration = '1s' }}
  kumo.start_esmtp_listener {{ listen = '127.0.0.1:{smtp_port}', relay_hosts = {{ '127.0.0.1' }} }}
end)

local MX = {{ ['target.example'] = {target_port}, ['sender.example'] = {sender_port},
             ['expire.example'] = {closed_port} }}

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  local expiring = domain == 'expire.example'
  return kumo.make_queue_config {{
    retry_interval = expiring and '1s' or '1h',
    max_age = expiring and '3s' or '1d',
    protocol = {{ smtp = {{ mx_list = {{ '127.0.0.1:' .. MX[domain] }} }} }},
  }}
end)

kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {{ prohibited_hosts = {{}}, enable_tls = 'Disabled' }}
end)
'''

PY_POLICY = '''
from kumocore import hookimpl
from kumocore.config import EgressPathConfig, QueueConfig

INCLUDE = {{"full": "FullContent", "headers": "HeadersOnly", "none": "No",
           "expired": "FullContent"}}
MX = {{"target.example": {target_port}, "sender.example": {sender_port},
      "expire.example": {closed_port}}}
_kumo = None


@hookimpl
def kumo_init(kumo):
    global _kumo
    _kumo = kumo
    kumo.define_spool(name="data", path="{spool}/data", kind="RocksDB")
    kumo.define_spool(name="meta", path="{spool}/meta", kind="RocksDB")
    kumo.configure_local_logs(log_dir="{logs}", max_segment_duration="1s")
    kumo.start_esmtp_listener(listen="127.0.0.1:{smtp_port}", relay_hosts=["127.0.0.1"])
    kumo.configure_log_disposition_hook(name="ndr_generator")


@hookimpl
async def kumo_log_disposition(hook_name, message, log_record):
    if hook_name != "ndr_generator":
        return
    who = log_record["sender"].split("@")[0] if "@" in log_record["sender"] else ""
    params = {{
        "include_original_message": INCLUDE.get(who, "FullContent"),
        "enable_expiration": who != "noexpire",
        "enable_bounce": who != "nobounce",
        "reporting_mta": {{"mta_type": "dns", "name": "mta1.example.com"}},
    }}
    dsn = await _kumo.generate_rfc3464_message(params, message, log_record)
    if dsn is not None:
        await _kumo.inject_message(dsn)


@hookimpl
def kumo_get_queue_config(domain, tenant, campaign, routing_domain):
    expiring = domain == "expire.example"
    return QueueConfig.from_options({{
        "retry_interval": "1s" if expiring else "1h",
        "max_age": "3s" if expiring else "1d",
        "protocol": {{"smtp": {{"mx_list": [f"127.0.0.1:{{MX[domain]}}"]}}}},
    }})


@hookimpl
def kumo_get_egress_path_config(domain, egress_source, site_name):
    return EgressPathConfig.from_options({{"prohibited_hosts": [], "enable_tls": "Disabled"}})
'''

# (envelope sender, recipient): what each one is for.
MAIL = [
    ("full@sender.example", "permfail-a@target.example"),     # Bounce -> DSN, FullContent
    ("headers@sender.example", "permfail-b@target.example"),  # Bounce -> DSN, HeadersOnly
    ("none@sender.example", "permfail-f@target.example"),     # Bounce -> DSN, No
    ("expired@sender.example", "user@expire.example"),        # Expiration -> DSN, Full
    ("nobounce@sender.example", "permfail-c@target.example"),  # enable_bounce = false
    ("noexpire@sender.example", "late@expire.example"),       # enable_expiration = false
    ("", "permfail-d@target.example"),                        # null sender: never a DSN
    ("permfail@sender.example", "permfail-e@target.example"),  # its DSN bounces: no loop
    ("full@sender.example", "tempfail@target.example"),       # TransientFailure: none
]


class Deployment:
    def __init__(self, tmp_path: Path, kind: str) -> None:
        self.target, self.sender = RecordingSink(), RecordingSink()
        self.tmp_path, self.kind = tmp_path, kind
        self.logs = tmp_path / "logs"
        self.smtp_port = free_port()

    async def start(self) -> None:
        await self.target.start()
        await self.sender.start()
        template = LUA_POLICY if self.kind == "lua" else PY_POLICY
        policy = self.tmp_path / f"policy.{self.kind}"
        policy.write_text(template.format(
            spool=self.tmp_path / "spool", logs=self.logs, smtp_port=self.smtp_port,
            target_port=self.target.port, sender_port=self.sender.port,
            closed_port=free_port()))
        self.kumo = ServeProcess(policy, self.tmp_path / "kumocore.log")
        self.kumo.start()
        await self.kumo.wait_for_smtp(self.smtp_port)

    async def stop(self) -> None:
        self.kumo.stop()
        await self.target.stop()
        await self.sender.stop()

    def records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.logs))

    async def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                kinds = [(r["type"], r["sender"], r["recipient"]) for r in self.records()]
                raise AssertionError(f"timed out waiting for {what}; records: {kinds}")
            await asyncio.sleep(0.2)


@pytest.fixture(params=["lua", "py"])
async def deployment(request: Any, tmp_path: Path) -> AsyncIterator[Deployment]:
    running = Deployment(tmp_path, request.param)
    await running.start()
    yield running
    await running.stop()


async def send_all(port: int) -> None:
    client = await RawSmtpClient.connect(port)
    await client.hello()
    for number, (sender, recipient) in enumerate(MAIL):
        body = f"Subject: original {number}\r\nX-Case: {number}\r\n\r\nbody of {number}\r\n"
        _, final = await client.send_mail(sender, [recipient], body)
        assert final.code == 250, str(final)
    await client.close()


def parse(received: Received) -> EmailMessage:
    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def report_parts(received: Received) -> tuple[str, str, list[str]]:
    """The human-readable text, the delivery-status text and the content types."""
    parts = list(parse(received).iter_parts())
    types = [part.get_content_type() for part in parts]
    # the delivery-status part as sent (the email package splits it into header blocks)
    raw = received.data.decode()
    start = raw.index("Content-Type: message/delivery-status")
    status = raw[start:raw.index("--report-", start)]
    return str(parts[0].get_content()), status, types


async def test_bounce_and_expiration_dsns_reach_the_senders_mx_and_nothing_loops(
    deployment: Deployment,
) -> None:
    await send_all(deployment.smtp_port)
    dsns = await deployment.sender.wait_for(4, timeout=60)

    def dsn_bounced() -> bool:
        return any(r["type"] == "Bounce" and r["sender"] == ""
                   and r["recipient"] == "permfail@sender.example"
                   for r in deployment.records())

    def all_original_outcomes() -> bool:
        kinds = [r["type"] for r in deployment.records() if r["sender"] != ""]
        return (kinds.count("Bounce") >= 5 and kinds.count("Expiration") >= 2
                and "TransientFailure" in kinds)

    await deployment.wait_for(dsn_bounced, 60, "the DSN to permfail@ to bounce")
    await deployment.wait_for(all_original_outcomes, 60, "every original outcome")
    await asyncio.sleep(2.0)  # a DSN about the DSN, were one made, would show by now

    by_recipient = {d.recipient: d for d in deployment.sender.messages}
    assert len(deployment.sender.messages) == 4, [d.recipient for d in dsns]
    assert set(by_recipient) == {"full@sender.example", "headers@sender.example",
                                 "none@sender.example", "expired@sender.example"}
    assert [d.sender for d in dsns] == ["<>"] * 4, dsns  # the null sender (MAIL FROM:<>)

    full = parse(by_recipient["full@sender.example"])
    assert full["From"] == "Mail Delivery Subsystem <mailer-daemon@mta1.example.com>"
    assert full["To"] == "full@sender.example" and full["Subject"] == "Returned mail"
    assert full.get_content_type() == "multipart/report"
    text, status, types = report_parts(by_recipient["full@sender.example"])
    assert types == ["text/plain", "message/delivery-status", "message/rfc822"]
    assert "Reporting-MTA: dns; mta1.example.com" in status
    assert "Final-Recipient: rfc822;permfail-a@target.example" in status
    assert "Status: 5.1.1" in status and "Remote-MTA: dns; " in status
    assert "550 5.1.1 user unknown" in text
    assert b"body of 0" in by_recipient["full@sender.example"].data

    _, status, types = report_parts(by_recipient["headers@sender.example"])
    assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert "Final-Recipient: rfc822;permfail-b@target.example" in status
    headers_dsn = by_recipient["headers@sender.example"].data
    assert b"Subject: original 1" in headers_dsn and b"body of 1" not in headers_dsn

    _, status, types = report_parts(by_recipient["none@sender.example"])
    assert types == ["text/plain", "message/delivery-status"]  # include = No
    assert "Final-Recipient: rfc822;permfail-f@target.example" in status
    assert b"Subject: original 2" not in by_recipient["none@sender.example"].data

    # expired after deferrals: its body had left memory and is read back from the spool
    text, status, types = report_parts(by_recipient["expired@sender.example"])
    assert types == ["text/plain", "message/delivery-status", "message/rfc822"]
    assert "Final-Recipient: rfc822;user@expire.example" in status
    assert "Status: 5.4.7" in status and "Remote-MTA" not in status
    assert b"body of 3" in by_recipient["expired@sender.example"].data

    records = deployment.records()
    null_sender = sorted((r["type"], r["recipient"]) for r in records
                         if r["sender"] == "" and r["type"] != "Reception")
    # the null-sender original's bounce, the four delivered DSNs and the DSN's bounce;
    # no DSN was ever addressed to the null sender
    assert null_sender == [
        ("Bounce", "permfail-d@target.example"), ("Bounce", "permfail@sender.example"),
        ("Delivery", "expired@sender.example"), ("Delivery", "full@sender.example"),
        ("Delivery", "headers@sender.example"), ("Delivery", "none@sender.example")]
    assert all(r["recipient"] for r in records)
    deferred = [r for r in records if r["type"] == "TransientFailure"
                and r["recipient"] == "tempfail@target.example"]
    assert len(deferred) == 1  # and no DSN for it (only four reached the sender's MX)
