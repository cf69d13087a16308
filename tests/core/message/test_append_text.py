"""msg:append_text_plain / msg:append_text_html: text added to the primary text part,
transfer encodings decoded and re-applied as KumoMTA does, other parts left as they were."""

from __future__ import annotations

import base64
from pathlib import Path

from kumocore.mail.message import Message
from tests.plugins.lua_policy.support import Recorder, load

MIXED = (
    b'Content-Type: multipart/mixed;\r\n\tboundary="my-boundary"\r\n\r\n'
    b"--my-boundary\r\n"
    b'Content-Type: text/plain;\r\n\tcharset="us-ascii"\r\n\r\n'
    b"plain text\r\n"
    b"--my-boundary\r\n"
    b'Content-Type: text/html;\r\n\tcharset="us-ascii"\r\n\r\n'
    b"<BODY>\r\n<b>rich</b> text\r\n</BODY>\r\n"
    b"--my-boundary\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment;\r\n\tfilename="woot.bin"\r\n\r\n'
    b"AAECAw==\r\n"
    b"--my-boundary--\r\n\r\n"
)


def message(data: bytes) -> Message:
    return Message("alice@examplecorp.com", "bob@gmail.com", data)


def test_plain_text_message_gets_a_line_and_a_content_type() -> None:
    msg = message(b"Subject: Hello\r\n\r\nBody")
    assert msg.append_text_plain("I am at the bottom") is True
    assert msg.get_data() == (
        b'Subject: Hello\r\nContent-Type: text/plain;\r\n\tcharset="us-ascii"\r\n'
        b"\r\nBody\r\nI am at the bottom\r\n")


def test_html_insertion_goes_ahead_of_the_body_tag_and_non_ascii_is_quoted_printable() -> None:
    msg = message(MIXED)
    assert msg.append_text_html("bottom html \N{GHOST}") is True
    html_part = (
        b'Content-Type: text/html;\r\n\tcharset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"<BODY>\r\n<b>rich</b> text\r\n\r\nbottom html =F0=9F=91=BB</BODY>\r\n")
    assert msg.get_data() == MIXED.replace(
        b'Content-Type: text/html;\r\n\tcharset="us-ascii"\r\n\r\n'
        b"<BODY>\r\n<b>rich</b> text\r\n</BODY>\r\n", html_part)


def test_html_without_a_body_tag_is_appended() -> None:
    msg = message(b"Content-Type: text/html\r\n\r\n<p>hi</p>")
    assert msg.append_text_html('<img src="x">') is True
    assert msg.get_data().endswith(b'\r\n\r\n<p>hi</p>\r\n<img src=3D"x">\r\n')
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in msg.get_data()


def test_plain_part_of_a_multipart_changes_alone() -> None:
    msg = message(MIXED)
    assert msg.append_text_plain("footer") is True
    assert msg.get_data() == MIXED.replace(b"plain text\r\n", b"plain text\r\n\r\nfooter\r\n")


def test_base64_part_is_decoded_and_re_encoded() -> None:
    text = "\u00e9t\u00e9 " * 30
    body = base64.encodebytes(text.encode()).replace(b"\n", b"\r\n")
    msg = message(b"Content-Type: text/plain; charset=utf-8\r\n"
                  b"Content-Transfer-Encoding: base64\r\n\r\n" + body)
    assert msg.append_text_plain("\u00e9\u00e9") is True
    assert msg.parse_mime().body == text + "\r\n\u00e9\u00e9"
    # mostly non-ASCII: base64 is shorter than quoted-printable, so it stays base64
    assert msg.get_data().startswith(
        b'Content-Type: text/plain;\r\n\tcharset="utf-8"\r\nContent-Transfer-Encoding: base64'
        b"\r\n\r\n")


def test_no_matching_part_returns_false_and_leaves_the_message() -> None:
    data = b"Content-Type: image/png\r\n\r\nxx"
    msg = message(data)
    assert msg.append_text_plain("x") is False
    assert msg.append_text_html("x") is False
    assert msg.get_data() == data


def test_an_attached_text_file_is_not_the_primary_part() -> None:
    data = (b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
            b"Content-Type: text/plain\r\n"
            b'Content-Disposition: attachment; filename="a.txt"\r\n\r\nfile\r\n--B--\r\n')
    msg = message(data)
    assert msg.append_text_plain("x") is False
    assert msg.get_data() == data


async def test_lua_append_text_plain_and_html(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          kumo.test.mark(msg:append_text_plain 'footer')
          kumo.test.mark(msg:append_text_html '<img src="http://10.0.0.1/t.jpg">')
          local parts = msg:parse_mime():get_simple_structure()
          kumo.test.mark(parts.text_part.body)
          kumo.test.mark(parts.html_part.body)
        end)
    """, recorder=recorder)
    await runtime.hooks.smtp_server_message_received(message(MIXED), {})
    assert recorder.marks == [
        # parse_mime's parts end with the line break before the next boundary, as KumoMTA's
        True, True, "plain text\r\n\r\nfooter\r\n",
        '<BODY>\r\n<b>rich</b> text\r\n\r\n<img src="http://10.0.0.1/t.jpg"></BODY>\r\n',
    ]
