"""Hostile MIME content against ``msg:parse_mime()`` in a listener's
``smtp_server_message_received``: the policy runs on the event loop, so what its reading
of a sender's headers costs is a stall of every other client of the node. Measured with a
1 ms ticker on the loop while a real SMTP client sends the message.

Each header here passes the listener's limits (lines under 998 bytes, folded): runs of
~990 characters with no ``=`` in a ``Content-Type`` parameter, and ``<a@a@a@...`` words
with no ``>`` in a ``Content-ID``, each cost the old patterns quadratic time per run (a
second or more for this message); ``(((...`` in ``From`` made ``rebuild()`` fail with
Python's "maximum recursion depth exceeded" instead of dropping the unreadable header.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kumocore.testing.plugin import MakeNode
from tests.support.ticker import LoopTicker

#: Longest loop pause accepted while the message is received and its MIME read.
MAX_STALL = 0.1

POLICY = """
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
  local root = msg:parse_mime()
  local structure = root:get_simple_structure()
  msg:set_meta('attachments', #structure.attachments)
  local ok, err = pcall(function() return root.headers:from() end)
  msg:set_meta('from_error', tostring(err))
  ok, err = pcall(function() return tostring(root:rebuild()) end)
  msg:set_meta('rebuilt', ok)
end)
"""


def mime_message(from_value: str, attachment_headers: str) -> bytes:
    return (
        f"From: {from_value}\r\nTo: u@dest.example\r\nSubject: x\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        f"--b\r\n{attachment_headers}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n"
    ).encode()


READINGS = """
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
  local root = msg:parse_mime()
  local function read(name, f)
    local ok, got = pcall(f)
    msg:set_meta(name, ok and got or ('error: ' .. tostring(got)))
  end
  read('from', function() return root.headers:from()[1].name end)
  read('message_id', function() return root.headers:message_id() end)
  read('param_names', function()
    local names = {}
    for name in pairs(root.headers:content_type().parameters) do table.insert(names, name) end
    table.sort(names)
    return table.concat(names, ',')
  end)
  read('file_name', function()
    return root:get_simple_structure().attachments[1].file_name
  end)
end)
"""


async def receive(
    make_node: MakeNode, message: bytes, policy: str = POLICY
) -> tuple[dict[str, Any], float]:
    """The meta the policy set on ``message`` and the loop's longest pause meanwhile."""
    node = await make_node(policy)
    async with LoopTicker() as ticker:
        await asyncio.sleep(0.01)
        assert await node.send("a@example.org", "u@dest.example", message) == {}
        [reception] = await node.wait_for("Reception")
    return reception["meta"], ticker.longest


async def test_long_unquoted_parameter_runs_and_unclosed_ids_do_not_stall_the_loop(
    make_node: MakeNode,
) -> None:
    param_runs = "".join(f";\r\n x{'a' * 990}" for _ in range(40))
    cid_runs = "\r\n ".join("<" + "a@" * 490 for _ in range(40))
    message = mime_message(
        "a@example.org", f"Content-Type: application/pdf{param_runs}\r\nContent-ID: {cid_runs}"
    )
    meta, max_gap = await receive(make_node, message)
    assert meta["attachments"] == 1  # read as the pdf attachment it claims to be
    assert meta["rebuilt"] is True
    assert max_gap < MAX_STALL  # the old patterns: over a second


async def test_deeply_nested_comments_in_from_are_a_clear_error_and_rebuild_drops_them(
    make_node: MakeNode,
) -> None:
    message = mime_message("(" * 600 + "a@example.org", "Content-Type: application/pdf")
    meta, _ = await receive(make_node, message)
    assert "invalid header" in meta["from_error"] and "too deeply" in meta["from_error"]
    assert meta["rebuilt"] is True  # the unreadable From is dropped, as any unreadable one


async def test_eight_bit_header_bytes_read_as_replacement_characters_not_bridge_errors(
    make_node: MakeNode,
) -> None:
    message = (
        b"From: \xe9ric <eric@example.org>\r\nTo: u@dest.example\r\n"
        b"Message-ID: <\xff1@example.org>\r\n"
        b"Content-Type: multipart/mixed; \xe9=1; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''%C3%A9t%C3%A9.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n"
    )
    meta, _ = await receive(make_node, message, READINGS)
    assert meta["from"] == "\ufffdric"
    assert meta["message_id"] == "\ufffd1@example.org"
    assert meta["param_names"] == "boundary,\ufffd"
    # RFC 2231 without sections (name*=charset''value) is decoded, as KumoMTA does
    assert meta["file_name"] == "\u00e9t\u00e9.pdf"


REENCODE = """
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
  local text = msg:parse_mime():get_simple_structure().text_part
  text.body = text.body .. 'signed off\\r\\n'
  msg:set_meta('size', #tostring(text))
end)
"""


async def test_reencoding_a_megabyte_text_part_keeps_the_loop_responsive(
    make_node: MakeNode,
) -> None:
    # Lines that need no escaping, as most text has: the old byte-by-byte codec spent
    # ~0.25 s a MB of loop time on them (decoding and encoding again).
    text = b"A line of text, as most lines of a message are.\r\n" * (1024 * 1024 // 49)
    message = (
        b"From: a@example.org\r\nTo: u@dest.example\r\nContent-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text
    )
    meta, max_gap = await receive(make_node, message, REENCODE)
    assert meta["size"] > len(text)
    assert max_gap < MAX_STALL  # the old codec: a quarter of a second
