"""KumoMTA's further message methods — scheduling, conformance, DKIM verification, report
and MIME parsing — from Lua and from Python."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.mail.message import Message
from kumocore.mail.scheduling import META_KEY

from .support import DATA, Recorder, dkim_key_server, load, make_runtime

DSN = (
    b"From: MAILER-DAEMON@mx.example\r\n"
    b"To: sender@example.com\r\n"
    b"Subject: failure\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
    b"\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n"
    b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.example\r\n\r\n"
    b"Final-Recipient: rfc822; gone@example.net\r\n"
    b"Action: failed\r\n"
    b"Status: 5.1.1\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
    b"--B--\r\n"
)

MIME = (
    b"From: a@example.com\r\nTo: b@example.net\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="M"\r\n\r\n'
    b"--M\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 text\r\n"
    b"--M\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
    b"--M\r\nContent-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="a.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n"
    b"--M--\r\n"
)


def message(data: bytes = DATA) -> Message:
    return Message("alice@examplecorp.com", "bob@gmail.com", data)


async def run_lua(tmp_path: Path, body: str, msg: Message) -> list[Any]:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, f"""\
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
{body}
end)
""", recorder=recorder)
    await runtime.hooks.smtp_server_message_received(msg, {})
    return recorder.marks


# ------------------------------------------------------------------------------ scheduling


async def test_lua_scheduling_header_is_imported_removed_and_delays_the_message(
    tmp_path: Path,
) -> None:
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).replace(microsecond=0)
    header = f'X-Schedule: {{"first_attempt":"{future.isoformat()}"}}\r\n'.encode()
    msg = message(header + DATA)
    marks = await run_lua(tmp_path, """\
  local sched = msg:import_scheduling_header('X-Schedule', true)
  kumo.test.mark(sched.first_attempt)
  kumo.test.mark(msg:get_first_named_header_value('X-Schedule') == nil)
  kumo.test.mark(msg:get_scheduling().first_attempt)
  kumo.test.mark(msg:import_scheduling_header('X-Absent') == nil)
  kumo.test.mark(msg:recipient_list()[1].domain)
""", msg)
    assert marks == [future.isoformat(), True, future.isoformat(), True, "gmail.com"]
    assert msg.due == pytest.approx(future.timestamp())
    assert META_KEY in msg.meta  # travels with the message through the spool


def test_python_scheduling_window_moves_due_into_the_window() -> None:
    msg = message()
    table = msg.set_scheduling({"dow": "Mon", "tz": "America/Phoenix",
                                "start": "09:00:00", "end": "10:00:00"})
    assert table == {"dow": "Mon", "tz": "America/Phoenix", "start": "09:00:00",
                     "end": "10:00:00"}
    phoenix = dt.timezone(dt.timedelta(hours=-7))  # no daylight saving time there
    if msg.due is None:  # now is inside the window (Monday 16:00-17:00 UTC): not delayed
        now = dt.datetime.now(phoenix)
        assert (now.weekday(), now.hour) == (0, 9)
    else:
        local = dt.datetime.fromtimestamp(msg.due, phoenix)
        if local.timestamp() > time.time() + 1:  # not already inside the window
            assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)
    with pytest.raises(ValueError, match="must be given together"):
        msg.set_scheduling({"dow": "Mon"})
    assert msg.set_scheduling(None) is None and msg.get_scheduling() is None


def test_python_set_due() -> None:
    msg = message()
    msg.set_due("2030-01-02T03:04:05Z")
    assert msg.due == dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()
    msg.set_due(None)
    assert msg.due is None
    with pytest.raises(ValueError, match="not an ISO 8601"):
        msg.set_due("tomorrow")


# ------------------------------------------------------------------------------ conformance


async def test_lua_check_fix_conformance_rejects_checked_and_fixes_the_rest(
    tmp_path: Path,
) -> None:
    broken = b"Subject : hi\nFrom: a@example.com\n\n" + b"x" * 100 + b"\n"
    msg = message(broken)
    marks = await run_lua(tmp_path, """\
  kumo.test.mark(msg:check_fix_conformance('LINE_TOO_LONG', ''))
  kumo.test.mark(msg:check_fix_conformance('MISSING_COLON_VALUE',
    'LINE_TOO_LONG|NAME_ENDS_WITH_SPACE|NON_CANONICAL_LINE_ENDINGS|MISSING_DATE_HEADER|' ..
    'MISSING_MESSAGE_ID_HEADER|MISSING_MIME_VERSION'))
  local ok, err = pcall(function() return msg:check_fix_conformance('SPOON', '') end)
  kumo.test.mark(tostring(err):match("unknown conformance issue 'SPOON'") ~= nil)
""", msg)
    assert marks == ["Message has conformance issues: LINE_TOO_LONG", None, True]
    data = msg.get_data()
    assert b"\r\nSubject: hi\r\n" in b"\r\n" + data
    assert msg.get_first_named_header_value("Date") is not None
    assert msg.get_first_named_header_value("Message-ID") is not None
    assert msg.get_first_named_header_value("MIME-Version") == "1.0"
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))


def test_python_check_fix_conformance_leaves_a_clean_message_alone() -> None:
    clean = (b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n"
             b"MIME-Version: 1.0\r\nSubject: ok\r\n\r\nbody\r\n")
    msg = message(clean)
    assert msg.check_fix_conformance("LINE_TOO_LONG|MISSING_DATE_HEADER", "LINE_TOO_LONG") is None
    assert msg.get_data() == clean


# ------------------------------------------------------------------------------ DKIM


@pytest.fixture
def signed() -> Iterator[tuple[TestDnsServer, str]]:
    with dkim_key_server() as server_and_key:
        yield server_and_key


async def test_lua_dkim_verify_passes_a_good_signature_and_fails_a_tampered_one(
    tmp_path: Path, signed: tuple[TestDnsServer, str]
) -> None:
    server, pem = signed
    recorder = Recorder()
    recorder.value = {"dns": server.address, "key": pem}
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          local v = kumo.test.value()
          kumo.dns.configure_resolver { name_servers = { v.dns } }
          local signer = kumo.dkim.rsa_sha256_signer {
            domain = 'examplecorp.com', selector = 'sel', key = { key_data = v.key },
            headers = { 'From', 'To', 'Subject' },
          }
          msg:dkim_sign(signer)
          local good = msg:dkim_verify()
          kumo.test.mark({ #good, good[1].result, good[1].method, good[1].props['header.d'],
                           good[1].props['header.s'] })
          msg:set_data(msg:get_data() .. 'tampered\\r\\n')
          kumo.test.mark(msg:dkim_verify()[1].result)
        end)
    """, recorder=recorder)
    await runtime.hooks.smtp_server_message_received(message(), {})
    assert recorder.marks == [[1, "pass", "dkim", "examplecorp.com", "sel"], "fail"]


async def test_python_dkim_verify_without_key_is_permerror(
    signed: tuple[TestDnsServer, str],
) -> None:
    server, pem = signed
    kumo = make_runtime().kumo
    kumo.dns.configure_resolver(name_servers=[server.address])
    signer = kumo.dkim.rsa_sha256_signer(domain="examplecorp.com", selector="other",
                                         key={"key_data": pem}, headers=["From", "To"])
    msg = message()
    msg.dkim_sign(signer)
    [result] = await msg.dkim_verify()
    assert result["result"] == "permerror"
    assert await message().dkim_verify() == []


# ------------------------------------------------------------------------------ reports & MIME


async def test_lua_parse_rfc3464_and_not_a_report(tmp_path: Path) -> None:
    marks = await run_lua(tmp_path, """\
  local report = msg:parse_rfc3464()
  local r = report.per_recipient[1]
  kumo.test.mark({ report.per_message.reporting_mta.name, r.final_recipient.recipient,
                   r.action, r.status.class, r.status.subject, r.status.detail,
                   r.diagnostic_code.diagnostic })
  kumo.test.mark(msg:parse_rfc5965() == nil)
""", message(DSN))
    assert marks == [["mx.example", "gone@example.net", "failed", 5, 1, 1,
                      "550 5.1.1 no such user"], True]


def test_python_parse_reports_return_none_for_plain_mail() -> None:
    assert message().parse_rfc3464() is None
    assert message().parse_rfc5965() is None


async def test_lua_parse_mime_reads_headers_parts_and_attachments(tmp_path: Path) -> None:
    marks = await run_lua(tmp_path, """\
  local mime = msg:parse_mime()
  kumo.test.mark(mime.headers:subject())
  kumo.test.mark(mime.headers:get_first_named('To').value)
  local names = {}
  for hdr in mime.headers:iter() do table.insert(names, hdr.name) end
  kumo.test.mark(names)
  local s = mime:get_simple_structure()
  kumo.test.mark({ s.text_part.body, s.html_part.body, #s.attachments,
                   s.attachments[1].file_name, s.attachments[1].part.body })
  kumo.test.mark(tostring(mime):find('multipart/mixed', 1, true) ~= nil)
  msg:shrink()
  msg:shrink_data()
""", message(MIME))
    assert marks == [
        "café",
        # KumoMTA's shapes: To's value is an address list; a part keeps the line break
        # that precedes the next boundary.
        [{"address": {"local_part": "b", "domain": "example.net"}}],
        ["From", "To", "Subject", "MIME-Version", "Content-Type"],
        ["café text\r\n", "<p>html</p>\r\n", 1, "a.pdf", "%PDF"],
        True,
    ]


def test_python_parse_mime() -> None:
    structure = message(MIME).parse_mime().get_simple_structure()
    # As in KumoMTA, a part ends with the line break before the next boundary.
    assert structure["text_part"].body == "café text\r\n"
    assert structure["attachments"][0]["part"].body == b"%PDF"


def _nested(depth: int) -> bytes:
    body = b"leaf\r\n"
    for level in range(depth):
        boundary = f"B{level}".encode()
        body = (b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--'
                + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
    return b"From: a@example.com\r\nSubject: x\r\n" + body


def test_parse_mime_refuses_absurd_nesting_with_a_clear_error() -> None:
    from kumocore.mail.mime_view import MAX_DEPTH, MimeStructureError

    # The leaf part has no blank line before "leaf": as in KumoMTA, that line is read as
    # a header (without a colon), so the leaf's body is empty.
    leaf = message(_nested(10)).parse_mime().walk()[-1]
    assert (leaf.id.count(".") + 1, leaf.headers.iter()().name) == (10, "leaf")
    with pytest.raises(MimeStructureError, match=f"nested deeper than {MAX_DEPTH} levels"):
        message(_nested(MAX_DEPTH + 5)).parse_mime()


def test_large_8bit_body_is_fixed_with_base64_not_quoted_printable() -> None:
    msg = message(b"Subject: x\r\n\r\n" + ("é" * 2000 + "\r\n").encode() * 200)
    assert msg.check_fix_conformance("", "NEEDS_TRANSFER_ENCODING|LINE_TOO_LONG") is None
    assert msg.get_first_named_header_value("Content-Transfer-Encoding") == "base64"
    assert msg.get_data().isascii()
    assert msg.parse_mime().body == ("é" * 2000 + "\r\n") * 200
