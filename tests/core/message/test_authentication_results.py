"""msg:add_authentication_results(serv_id, results): an RFC 8601 header in KumoMTA's form,
from Python and from Lua (with what msg:dkim_verify() really returns)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.mail.message import Message
from tests.plugins.lua_policy.support import DATA, Recorder, dkim_key_server, load

DKIM_PASS = {
    "method": "dkim", "method_version": None, "result": "pass", "reason": None,
    "props": {"header.s": "pf2023", "header.d": "github.com", "header.i": "@github.com",
              "header.a": "rsa-sha256", "header.b": "jo0EO4dX"},
}


def message(data: bytes = DATA) -> Message:
    return Message("alice@examplecorp.com", "bob@gmail.com", data)


def test_results_are_prepended_one_method_per_folded_line_with_sorted_props() -> None:
    msg = message()
    msg.add_authentication_results(
        "mx.example.com", [DKIM_PASS, {"method": "spf", "result": "pass"}])
    assert msg.get_data() == (
        b"Authentication-Results: mx.example.com;\r\n"
        b"\tdkim=pass\r\n"
        b"\theader.a=rsa-sha256\r\n"
        b"\theader.b=jo0EO4dX\r\n"
        b"\theader.d=github.com\r\n"
        b"\theader.i=@github.com\r\n"
        b"\theader.s=pf2023;\r\n"
        b"\tspf=pass\r\n" + DATA)
    assert msg.get_first_named_header_value("Authentication-Results").startswith(
        "mx.example.com;")


def test_no_results_is_written_as_none() -> None:
    msg = message()
    msg.add_authentication_results("mx.example.com", [])
    assert msg.get_data() == b"Authentication-Results: mx.example.com; none\r\n" + DATA


def test_method_version_and_reason_and_non_token_values_are_quoted() -> None:
    msg = message()
    msg.add_authentication_results("mx", [{
        "method": "dkim", "method_version": 1, "result": "fail",
        "reason": "body hash did not verify", "props": {"header.b": "ab/c+d="}}])
    assert msg.get_data().startswith(
        b'Authentication-Results: mx;\r\n\tdkim/1=fail reason="body hash did not verify"'
        b'\r\n\theader.b="ab/c+d="\r\n')


def test_lines_end_the_way_the_messages_lines_do() -> None:
    msg = message(b"Subject: lf only\n\nbody\n")
    msg.add_authentication_results("mx", [{"method": "spf", "result": "none"}])
    assert msg.get_data() == b"Authentication-Results: mx;\n\tspf=none\nSubject: lf only\n\nbody\n"


@pytest.mark.parametrize(("results", "error"), [
    ([{"method": "dkim"}], "missing field `result`"),
    ([{"method": "dkim", "result": "pass", "colour": "red"}], "unknown field `colour`"),
    ([{"method": "dkim", "result": "pass\r\nX-Evil: 1"}], "line break"),
    ("dkim=pass", "expected an array"),
])
def test_malformed_results_are_refused_and_the_message_is_unchanged(
    results: object, error: str,
) -> None:
    msg = message()
    with pytest.raises(ValueError, match=error):
        msg.add_authentication_results("mx", results)
    assert msg.get_data() == DATA


@pytest.fixture
def dkim_dns() -> Iterator[tuple[TestDnsServer, str]]:
    with dkim_key_server() as server_and_key:
        yield server_and_key


async def test_lua_adds_the_results_of_dkim_verify_as_a_header(
    tmp_path: Path, dkim_dns: tuple[TestDnsServer, str],
) -> None:
    server, pem = dkim_dns
    recorder = Recorder()
    recorder.value = {"dns": server.address, "key": pem}
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          local v = kumo.test.value()
          kumo.dns.configure_resolver { name_servers = { v.dns } }
          msg:dkim_sign(kumo.dkim.rsa_sha256_signer {
            domain = 'examplecorp.com', selector = 'sel', key = { key_data = v.key },
            headers = { 'From', 'To', 'Subject' },
          })
          local results = msg:dkim_verify()
          table.insert(results, { method = 'spf', result = 'pass' })
          msg:add_authentication_results('mx.example.com', results)
          kumo.test.mark(msg:get_first_named_header_value 'Authentication-Results')
          kumo.test.mark(results[1].props['header.b'])
        end)
    """, recorder=recorder)
    msg = message()
    await runtime.hooks.smtp_server_message_received(msg, {})
    header_b = recorder.marks[1]
    # A MIME token may hold "+" but not "/" or "=" (RFC 2045 tspecials): only those
    # make the writer quote the signature's first characters.
    b_value = f'"{header_b}"' if set(header_b) & set("/=") else header_b
    assert msg.get_data().startswith(
        b"Authentication-Results: mx.example.com;\r\n\tdkim=pass\r\n\theader.a=rsa-sha256"
        b"\r\n\theader.b=" + b_value.encode() + b"\r\n\theader.d=examplecorp.com\r\n"
        b"\theader.i=@examplecorp.com\r\n\theader.s=sel;\r\n\tspf=pass\r\nDKIM-Signature:")
    assert recorder.marks[0].startswith("mx.example.com;")


async def test_lua_empty_results_write_none(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          msg:add_authentication_results(msg:get_meta 'hostname', msg:dkim_verify())
        end)
    """)
    msg = message()
    msg.set_meta("hostname", "mx.example.com")
    await runtime.hooks.smtp_server_message_received(msg, {})
    assert msg.get_data() == b"Authentication-Results: mx.example.com; none\r\n" + DATA
