"""``kumocore trace-smtp-server`` (the installed script) against a live node, and the text
rules it shares with ``trace-smtp-client`` (kcli's output)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from kumocore.testing.plugin import MakeNode
from kumocore.trace.bus import SERVER_TRACE
from kumocore.trace.text import TraceText, duration, escape_debug
from tests.admin.test_trace_smtp_server import ESMTP, OTHER, TRACED, conversation

SCRIPT = Path(sys.executable).with_name("kumocore")


async def start_cli(*argv: str) -> asyncio.subprocess.Process:
    if not SCRIPT.exists():
        pytest.skip("the kumocore script is not installed next to this interpreter")
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT), *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    for _ in range(1000):  # the script's interpreter starts, then it subscribes
        if any(type(s.matches).__name__ == "ServerFilter" for s in SERVER_TRACE.subscribers):
            return process
        if process.returncode is not None:
            break
        await asyncio.sleep(0.01)
    process.kill()
    out, err = await process.communicate()
    raise AssertionError(f"the CLI did not subscribe: {out!r} {err!r}")


async def test_the_cli_prints_one_session_as_kcli_does_and_stops_with_only_one(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP)
    process = await start_cli("trace-smtp-server", "--endpoint", node.http_url, "--only-one",
                              "--color", "no", "--source", f"{TRACED}/32")  # fmt: skip
    await conversation(node.smtp_port, OTHER)  # not traced: --source
    client, message_id = await conversation(node.smtp_port, TRACED)
    out, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, err
    lines = out.decode().splitlines()
    key = re.escape(f"[{TRACED}:") + r"\d+->" + re.escape(f"127.0.0.1:{node.smtp_port}]")
    parsed = [re.fullmatch(key + r" (.{5}) (.*)", line) for line in lines]
    assert all(parsed), lines
    texts = [m.group(2) for m in parsed if m]
    assert parsed[0] and parsed[0].group(1) == " " * 5  # the first line of a session
    assert re.fullmatch(r"=== Connected \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ UTC", texts[0])
    peer = texts[3].removeprefix('=== conn_meta received_from="').removesuffix('"')
    greeting, ehlo = client.lines[0][0].strip(), [line.strip() for line in client.lines[1]]
    meta = {"reception_protocol": "ESMTP", "received_via": f"127.0.0.1:{node.smtp_port}",
            "received_from": peer, "hostname": "node.kumocore.test"}  # fmt: skip
    expected = [
        *(f'=== conn_meta {k}="{v}"' for k, v in meta.items()),
        "=== smtp_server_connection_accepted: Ok",
        f"<-  {greeting}",
        " -> EHLO client.test", "=== smtp_server_ehlo: Ok",
        # KumoMTA records the EHLO domain after the reply (smtp_server.rs): the next event
        # is the first to carry it, and the text shows the change after that event's line.
        *(f"<-  {line}" for line in ehlo),
        " -> MAIL FROM:<sender@example.org>", '=== conn_meta ehlo_domain="client.test"',
        "=== smtp_server_mail_from: Ok",
        "<-  250 2.1.0 OK",
        " -> RCPT TO:<rcpt@example.com>", "=== get_listener_domain domain=example.com: Ok",
        "=== smtp_server_rcpt_to: Ok", "<-  250 2.1.5 OK",
        " -> DATA", "<-  354 Send body; end with CRLF.CRLF",
        " -> Subject: traced", " -> ", " -> line one", " -> line two", " -> .",
        "=== smtp_server_message_received: Ok",
        f"=== Message from=<sender@example.org> to=<rcpt@example.com> id={message_id}",
        '=== Message queue=example.com relay=true log_arf="Ignore" log_oob="Ignore" '
        "was_arf_or_oob=Some(false) will_enqueue=Some(true)",
        *(f'=== Message meta: {k}="{v}"' for k, v in {**meta, "ehlo_domain": "client.test"}
          .items()),
        f"<-  250 OK ids={message_id}",
        " -> QUIT", f"<-  {client.lines[-1][0].strip()}",
        "=== Closed",
    ]  # fmt: skip
    assert texts[1:] == expected


async def test_the_cli_reports_a_refused_trace_and_exits_1(make_node: MakeNode) -> None:
    node = await make_node(esmtp=ESMTP)
    if not SCRIPT.exists():
        pytest.skip("the kumocore script is not installed next to this interpreter")
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "trace-smtp-client",
        "--endpoint",
        node.http_url,
        "--mx-addr",
        "nonsense",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 1 and out == b""
    assert b"(1008)" in err and b"mx_addr" in err


def test_durations_print_as_rust_does() -> None:
    assert [duration(s) for s in (0.0000005, 0.000272, 0.0125, 2.4, 2.5)] == [
        "500ns", "272µs", "13ms", "2s", "3s"]  # fmt: skip


def test_escape_debug_shows_control_characters_and_quotes() -> None:
    assert escape_debug('a\tb"c\x01') == 'a\\tb\\"c\\u{1}'


def test_client_text_marks_writes_and_reads_and_abbreviates_terse_writes() -> None:
    text = TraceText(client=True, terse=True)
    meta = {"id": "s1"}
    when = "2026-12-06T03:00:00.000000Z"
    lines = [*text.lines({"conn_meta": meta, "payload": "BeginSession", "when": when}),
             *text.lines({"conn_meta": meta, "payload": {"Read": "220 hi\r\n"},
                          "when": "2026-12-06T03:00:00.002000Z"}),
             *text.lines({"conn_meta": meta, "payload": {
                 "AbbreviatedWrite": {"snippet": "Subject: x", "len": 300}},
                 "when": "2026-12-06T03:00:01.500000Z"})]  # fmt: skip
    assert lines == [
        "[s1]       === BeginSession 2026-12-06 03:00:00.000000 UTC",
        '[s1]       === conn_meta id="s1"',
        "[s1]   2ms  <- 220 hi",
        "[s1]    2s ->  Subject: x",
        "[s1]    2s === bytes written=300",
    ]


def test_only_new_skips_sessions_already_open_when_the_trace_started() -> None:
    text = TraceText(only_new=True)
    meta = {"received_from": "10.0.0.1:5", "received_via": "10.0.0.2:25"}
    event = {"conn_meta": meta, "payload": {"Read": "NOOP\r\n"},
             "when": "2026-12-06T03:00:00Z"}  # fmt: skip
    assert text.lines(event) == []
