"""``kumo.mimepart`` and writable MIME parts, from Lua policies: each example of KumoMTA's
kumo.mimepart, mimepart and headermap reference pages run against kumocore, with the
values those pages (and KumoMTA's own tests) show asserted exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kumocore.mail.message import Message

from .support import Recorder, load

CRLF_BUILDER_EXAMPLE = (
    'Content-Type: multipart/mixed;\r\n\tboundary="mm-boundary"\r\n'
    "Mime-Version: 1.0\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\n\r\n"
    "--mm-boundary\r\n"
    'Content-Type: multipart/alternative;\r\n\tboundary="ma-boundary"\r\n\r\n'
    '--ma-boundary\r\nContent-Type: text/plain;\r\n\tcharset="us-ascii"\r\n\r\n'
    "Hello, plain\r\n"
    '--ma-boundary\r\nContent-Type: text/html;\r\n\tcharset="us-ascii"\r\n\r\n'
    "<b>Hello, html</b>\r\n"
    "--ma-boundary--\r\n"
    "--mm-boundary\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    "SSBhbSBhIHBsYWluIHRleHQgZmlsZSB3aXRoIG5vIG9wdGlvbnMgc3BlY2lmaWVk\r\n"
    '--mm-boundary\r\nContent-Disposition: attachment;\r\n\tfilename="binary.dat"\r\n'
    'Content-Type: application/octet-stream;\r\n\tname="binary.dat"\r\n'
    "Content-Transfer-Encoding: base64\r\n\r\nqrs=\r\n"
    "--mm-boundary--\r\n"
)


async def run(tmp_path: Path, body: str, data: bytes = b"Subject: x\r\n\r\nhi\r\n") -> Any:
    recorder = Recorder()
    runtime, _ = await load(
        tmp_path,
        f"""\
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
{body}
end)
""",
        recorder=recorder,
    )
    msg = Message("a@example.com", "b@example.net", data)
    await runtime.hooks.smtp_server_message_received(msg, {})
    return recorder.marks, msg


async def test_builder_docs_example_with_stable_content_is_exact(tmp_path: Path) -> None:
    marks, _ = await run(
        tmp_path,
        r"""
  local builder = kumo.mimepart.builder()
  builder:set_stable_content(true)
  builder:text_plain 'Hello, plain'
  builder:text_html '<b>Hello, html</b>'
  builder:attach('text/plain', 'I am a plain text file with no options specified')
  builder:attach('application/octet-stream', '\xaa\xbb', { file_name = 'binary.dat' })
  local root = builder:build()
  kumo.test.mark(tostring(root))
  local found = {}
  for _, att in ipairs(root:get_simple_structure().attachments) do
    table.insert(found, { att.file_name or false, att.content_type, att.part.body == '\xaa\xbb'
                          or att.part.body })
  end
  kumo.test.mark(found)
  local ok, err = pcall(builder.build, builder)
  kumo.test.mark({ ok, tostring(err) })
""",
    )
    assert marks[0] == CRLF_BUILDER_EXAMPLE
    assert marks[1] == [
        [False, "text/plain", "I am a plain text file with no options specified"],
        ["binary.dat", "application/octet-stream", True],
    ]
    assert marks[2][0] is False and "builder already built" in marks[2][1]


async def test_builder_without_stable_content_varies_boundary_and_dates_now(
    tmp_path: Path,
) -> None:
    marks, _ = await run(
        tmp_path,
        """
  local function build()
    local b = kumo.mimepart.builder()
    b:text_plain 'one'
    b:text_html '<i>two</i>'
    return tostring(b:build())
  end
  kumo.test.mark({ build(), build() })
  local b = kumo.mimepart.builder()
  local ok, err = pcall(b.build, b)
  kumo.test.mark({ ok, tostring(err) })
""",
    )
    first, second = marks[0]
    assert first != second and "ma-boundary" not in first
    assert "Date: " in first and "2003" not in first
    assert marks[1][0] is False and "no text or html part was specified" in marks[1][1]


async def test_new_multipart_docs_example_with_boundary_and_utf8_file_name(
    tmp_path: Path,
) -> None:
    marks, _ = await run(
        tmp_path,
        r"""
  local main = kumo.mimepart.new_text_plain 'Hello, I am the main message content'
  for _, name in ipairs { 'binary.dat', '👾.dat' } do
    local attachment = kumo.mimepart.new_binary('application/octet-stream', '\xbb\xaa',
                                                { file_name = name })
    kumo.test.mark(tostring(kumo.mimepart.new_multipart('multipart/mixed',
                                                        { main, attachment }, 'woot')))
  end
  local a = tostring(kumo.mimepart.new_multipart('multipart/mixed', { main }))
  local b = tostring(kumo.mimepart.new_multipart('multipart/mixed', { main }))
  kumo.test.mark({ a ~= b, a:match('boundary="([^"]+)"') })
""",
    )
    head = (
        'Content-Type: multipart/mixed;\r\n\tboundary="woot"\r\n\r\n--woot\r\n'
        'Content-Type: text/plain;\r\n\tcharset="us-ascii"\r\n\r\n'
        "Hello, I am the main message content\r\n--woot\r\n"
    )
    tail = "Content-Transfer-Encoding: base64\r\n\r\nu6o=\r\n--woot--\r\n"
    assert (
        marks[0]
        == head
        + (
            'Content-Disposition: attachment;\r\n\tfilename="binary.dat"\r\n'
            'Content-Type: application/octet-stream;\r\n\tname="binary.dat"\r\n'
        )
        + tail
    )
    assert (
        marks[1]
        == head
        + (
            "Content-Disposition: attachment;\r\n\tfilename*=UTF-8''%F0%9F%91%BE.dat\r\n"
            'Content-Type: application/octet-stream;\r\n\tname="=?UTF-8?q?=F0=9F=91=BE.dat?="\r\n'
        )
        + tail
    )
    different, generated = marks[2]
    assert different and len(generated) == 22  # a UUID in unpadded base64


async def test_new_text_html_and_plain_pick_charset_and_transfer_encoding(
    tmp_path: Path,
) -> None:
    marks, _ = await run(
        tmp_path,
        """
  kumo.test.mark(tostring(kumo.mimepart.new_text('text/markdown', 'Some markdown text')))
  kumo.test.mark(tostring(kumo.mimepart.new_html '<b>Hello</b>!'))
  kumo.test.mark(tostring(kumo.mimepart.new_text_plain 'This is the body! 👻'))
  kumo.test.mark(tostring(kumo.mimepart.new_text_plain(string.rep('日本語', 30))))
""",
    )
    assert marks[0] == (
        'Content-Type: text/markdown;\r\n\tcharset="us-ascii"\r\n\r\nSome markdown text\r\n'
    )
    assert marks[1] == 'Content-Type: text/html;\r\n\tcharset="us-ascii"\r\n\r\n<b>Hello</b>!\r\n'
    assert marks[2] == (
        'Content-Type: text/plain;\r\n\tcharset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "This is the body! =F0=9F=91=BB\r\n"
    )
    # Mostly non-ASCII: base64 is shorter than quoted-printable, and lines stay at 76.
    head, body = marks[3].split("\r\n\r\n", 1)
    assert "Content-Transfer-Encoding: base64" in head
    assert max(len(line) for line in body.split("\r\n")) == 76


async def test_parsed_part_body_assignment_shows_in_root_and_every_handle(
    tmp_path: Path,
) -> None:
    marks, msg = await run(
        tmp_path,
        """
  local mime = msg:parse_mime()
  kumo.test.mark(tostring(mime) == tostring(kumo.mimepart.parse(msg:get_data())))
  local structure = mime:get_simple_structure()
  kumo.test.mark({ structure.text_part.body, structure.html_part == nil })
  structure.text_part.body = 'hello world!\\r\\n'
  kumo.test.mark(structure.text_part.body)
  local headers = {}
  for hdr in mime.headers:iter() do headers[hdr.name] = hdr.unstructured end
  kumo.test.mark(headers)
  kumo.test.mark(mime.headers:get_first_named('subject').unstructured)
  kumo.test.mark({ tostring(structure.text_part), mime.id })
  local ok, err = pcall(function() mime.id = 'x' end)
  kumo.test.mark({ ok, tostring(err):find('read-only', 1, true) ~= nil })
  msg:set_data(tostring(mime))
""",
        b"From: me@example.com\r\nSubject: hello\r\n\r\nHi",
    )
    expected = (
        "From: me@example.com\r\nSubject: hello\r\nContent-Type: text/plain;\r\n"
        '\tcharset="us-ascii"\r\n\r\nhello world!\r\n'
    )
    assert marks == [
        True,
        ["Hi", True],
        "hello world!\r\n",
        {
            "Content-Type": 'text/plain; charset="us-ascii"',
            "From": "me@example.com",
            "Subject": "hello",
        },
        "hello",
        [expected, ""],
        [False, True],
    ]
    assert msg.get_data() == expected.encode()


async def test_headermap_setters_getters_and_wrapping(tmp_path: Path) -> None:
    marks, _ = await run(
        tmp_path,
        """
  local root = kumo.mimepart.new_text_plain 'Hello!'
  local headers = root.headers
  headers:prepend('X-Woot', 'Woot')
  headers:prepend('To', '"John Smith" <john.smith@example.com>')
  kumo.test.mark(tostring(headers))
  local all = {}
  for hdr in headers:iter() do table.insert(all, { hdr.name, hdr.value }) end
  kumo.test.mark(all)
  headers:set_from 'user@host'
  kumo.test.mark(headers:from())
  headers:set_reply_to { { name = 'Test [hello]',
                           address = { local_part = 'some.one', domain = 'example.com' } } }
  kumo.test.mark(headers:get_first_named('Reply-To').raw_value)
  headers:set_cc {
    { name = 'Other Person', address = { local_part = 'other.person', domain = 'example.com' } },
    { address = { local_part = 'just.email.address', domain = 'example.com' } },
  }
  kumo.test.mark(headers:get_first_named('Cc').raw_value)
  headers:set_bcc { { name = 'The A Team', entries = {
    { name = 'Bodie', address = { local_part = 'bodie', domain = 'example.com' } },
    { address = { local_part = 'doyle', domain = 'example.com' } },
    { address = { local_part = 'tiger', domain = 'example.com' } },
    { address = { local_part = 'the.jewellery.man', domain = 'example.com' } },
  } } }
  kumo.test.mark(headers:get_first_named('bcc').raw_value)
  headers:set_subject 'very interesting subject'
  headers:set_message_id '<123@example.com>'
  kumo.test.mark({ headers:subject(), headers:message_id() })
  local ok, err = pcall(headers.set_message_id, headers, 'missing.angles@example.com')
  kumo.test.mark({ ok, tostring(err):find('invalid header', 1, true) ~= nil })
  kumo.test.mark(headers:content_type())
  headers:set_content_type { value = 'text/html',
    parameters = { charset = 'utf-8', extra_somethin_something = 'a dash' } }
  kumo.test.mark(tostring(headers:get_first_named 'Content-type'))
  headers:prepend('X-Long', string.rep('A', 1500))
  kumo.test.mark(tostring(headers:get_first_named 'X-Long'))
  headers:prepend('X-Long', string.rep('hello there ', 10))
  kumo.test.mark(tostring(headers:get_first_named 'X-Long'))
  headers:remove_all_named 'x-long'
  kumo.test.mark(headers:get_first_named 'X-Long' == nil)
""",
    )
    john = {"name": "John Smith", "address": {"local_part": "john.smith", "domain": "example.com"}}
    assert marks[0] == (
        'To: "John Smith" <john.smith@example.com>\r\nX-Woot: Woot\r\n'
        'Content-Type: text/plain;\r\n\tcharset="us-ascii"\r\n'
    )
    assert marks[1] == [
        ["To", [john]],
        ["X-Woot", "Woot"],
        ["Content-Type", {"value": "text/plain", "parameters": {"charset": "us-ascii"}}],
    ]
    assert marks[2] == [{"address": {"local_part": "user", "domain": "host"}}]
    assert marks[3] == '"Test [hello]" <some.one@example.com>'
    assert (
        marks[4]
        == '"Other Person" <other.person@example.com>,\r\n\t<just.email.address@example.com>'
    )
    assert marks[5] == (
        "The A Team:Bodie <bodie@example.com>,\r\n\t<doyle@example.com>,\r\n\t"
        "<tiger@example.com>,\r\n\t<the.jewellery.man@example.com>;"
    )
    assert marks[6] == ["very interesting subject", "123@example.com"]
    assert marks[7] == [False, True]
    assert marks[8] == {"value": "text/plain", "parameters": {"charset": "us-ascii"}}
    assert marks[9] == (
        'Content-Type: text/html;\r\n\tcharset="utf-8";\r\n\textra_somethin_something="a dash"\r\n'
    )
    assert marks[10] == "X-Long: " + "A" * 900 + "\r\n\t" + "A" * 600 + "\r\n"
    assert marks[11] == (
        "X-Long: hello there hello there hello there hello there hello there "
        "hello there\r\n\thello there hello there hello there hello there\r\n"
    )
    assert marks[12] is True


MIXED = (
    b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="A"\r\n\r\n'
    b"preamble\r\n"
    b"--A\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    b"--A\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
    b"--A--\r\nepilogue\r\n"
)


async def test_simple_structure_docs_example_prepends_to_text_and_html(tmp_path: Path) -> None:
    _, msg = await run(
        tmp_path,
        """
  local mime_part = msg:parse_mime()
  local structure = mime_part:get_simple_structure()
  if structure.text_part then
    structure.text_part.body = 'PREPENDED!\\r\\n' .. structure.text_part.body
  end
  if structure.html_part then
    structure.html_part.body = '<B>PREPENDED!</B>\\r\\n' .. structure.html_part.body
  end
  msg:set_data(tostring(mime_part))
""",
        MIXED,
    )
    assert msg.get_data() == MIXED.replace(
        b"Content-Type: text/plain\r\n\r\nplain",
        b'Content-Type: text/plain;\r\n\tcharset="us-ascii"\r\n\r\nPREPENDED!\r\nplain',
    ).replace(
        b"Content-Type: text/html\r\n\r\n<p>html",
        b'Content-Type: text/html;\r\n\tcharset="us-ascii"\r\n\r\n<B>PREPENDED!</B>\r\n<p>html',
    )


async def test_replace_body_append_part_and_rebuild(tmp_path: Path) -> None:
    marks, msg = await run(
        tmp_path,
        r"""
  local mime = msg:parse_mime()
  local parts = mime:get_simple_structure()
  parts.html_part:replace_body('\xff\xfe', 'image/x-raw')
  kumo.test.mark({ parts.html_part.headers:content_type().value,
                   parts.html_part.body == '\xff\xfe', parts.html_part.id })
  parts.text_part:replace_body('changed content', 'text/plain')
  mime:append_part(kumo.mimepart.new_text('text/markdown', '# hi'))
  local kids = mime:get_simple_structure()
  kumo.test.mark({ #kids.attachments, kids.attachments[2].content_type })
  kumo.test.mark(tostring(mime:rebuild()))
  msg:set_data(tostring(mime:rebuild()))
""",
        MIXED.replace(b"From: a@example.com", b"From:  Someone <someone@example.com>"),
    )
    assert marks[0] == ["image/x-raw", True, "1"]
    assert marks[1] == [2, "text/markdown"]
    rebuilt = marks[2]
    # Rebuilding keeps the boundary, re-encodes every part and re-writes the headers.
    assert rebuilt.startswith(
        'Content-Type: multipart/alternative;\r\n\tboundary="A"\r\n'
        "From: Someone <someone@example.com>\r\nSubject: s\r\nMIME-Version: 1.0\r\n\r\n"
        "--A\r\n"
    )
    assert "preamble" not in rebuilt and "epilogue" not in rebuilt
    assert (
        "Content-Type: image/x-raw\r\nContent-Transfer-Encoding: base64\r\n\r\n//4=\r\n" in rebuilt
    )
    assert msg.get_data() == rebuilt.encode()


async def test_python_policy_has_the_mimepart_functions() -> None:
    from kumocore_lua_policy.stdlib import LuaStdlib

    kumo = LuaStdlib().functions()
    part = kumo["mimepart.parse"](b"Subject: hello\r\n\r\nbody\r\n")
    assert part.headers.subject() == "hello"
    assert part.body == "body\r\n"
    part.body = b"\x00\x01"
    assert part.body == b"\x00\x01"
    built = kumo["mimepart.builder"]()
    built.text_plain("x")
    assert "Mime-Version: 1.0" in str(built.build())


async def test_parse_docs_example_iter_by_name_append_and_binary_body(tmp_path: Path) -> None:
    marks, _ = await run(
        tmp_path,
        r"""
  local part = kumo.mimepart.parse 'Subject: hello\r\n\r\nbody\r\n'
  kumo.test.mark({ part.headers:subject(), part.body })
  local headers = part.headers
  headers:append('X-Something', 'Some value')
  headers:append('Authentication-Results', 'mx.example; spf=pass')
  headers:append('authentication-results', 'mx.example; dkim=none')
  local seen = {}
  for hdr in headers:iter 'Authentication-Results' do
    table.insert(seen, { hdr.name, hdr.raw_value })
  end
  kumo.test.mark(seen)
  part.body = '\x00\xff'
  kumo.test.mark({ part.body == '\x00\xff', headers:content_transfer_encoding().value })
  kumo.test.mark(tostring(part))
""",
    )
    assert marks[0] == ["hello", "body\r\n"]
    assert marks[1] == [
        ["Authentication-Results", "mx.example; spf=pass"],
        ["authentication-results", "mx.example; dkim=none"],
    ]
    assert marks[2] == [True, "base64"]
    assert marks[3] == (
        "Subject: hello\r\nX-Something: Some value\r\n"
        "Authentication-Results: mx.example; spf=pass\r\n"
        "authentication-results: mx.example; dkim=none\r\n"
        # no Content-Type before: binary content gets the binary default
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        "\r\nAP8=\r\n"
    )


def test_python_builder_gives_the_same_text_as_lua() -> None:
    from kumocore_lua_policy.stdlib import LuaStdlib

    kumo = LuaStdlib().functions()
    builder = kumo["mimepart.builder"]()
    builder.set_stable_content(True)
    builder.text_plain("Hello, plain")
    builder.text_html("<b>Hello, html</b>")
    builder.attach("text/plain", "I am a plain text file with no options specified")
    builder.attach("application/octet-stream", b"\xaa\xbb", {"file_name": "binary.dat"})
    assert str(builder.build()) == CRLF_BUILDER_EXAMPLE


async def test_authentication_results_header_reads_back_what_was_added(tmp_path: Path) -> None:
    marks, _ = await run(
        tmp_path,
        """
  msg:add_authentication_results('mx.example.com', {
    { method = 'dkim', result = 'pass', props = { ['header.d'] = 'example.com',
                                                  ['header.b'] = 'ab+c==' } },
    { method = 'spf', method_version = 1, result = 'fail', reason = 'not listed here' },
  })
  msg:append_header('Authentication-Results', 'other.example (a comment); none')
  local values = {}
  for hdr in msg:parse_mime().headers:iter 'Authentication-Results' do
    table.insert(values, hdr.value)
  end
  kumo.test.mark(values)
""",
    )
    assert marks[0] == [
        {
            "serv_id": "mx.example.com",
            "results": [
                {
                    "method": "dkim",
                    "result": "pass",
                    "props": {"header.d": "example.com", "header.b": "ab+c=="},
                },
                {
                    "method": "spf",
                    "method_version": 1,
                    "result": "fail",
                    "reason": "not listed here",
                    "props": {},
                },
            ],
        },
        {"serv_id": "other.example", "results": {}},
    ]


async def test_builder_amp_and_inline_part_go_in_alternative_and_related(
    tmp_path: Path,
) -> None:
    marks, _ = await run(
        tmp_path,
        r"""
  local b = kumo.mimepart.builder()
  b:set_stable_content(true)
  b:text_plain 'plain'
  b:text_amp_html '<html amp4email>amp</html>'
  b:text_html '<img src=cid:logo>'
  b:attach_part(kumo.mimepart.new_binary('image/png', '\x89PNG',
                { file_name = 'logo.png', inline = true, content_id = 'logo' }))
  local root = b:build()
  local s = root:get_simple_structure()
  local a = s.attachments[1]
  kumo.test.mark({ s.text_part.id, s.amp_html_part.id, s.html_part.id, #s.attachments,
                   a.file_name, a.inline, a.content_id, a.part.id })
  kumo.test.mark(root.headers:content_type().parameters.boundary)
  local ok, err = pcall(kumo.mimepart.new_binary, 'x/y', 'data', { filename = 'typo' })
  kumo.test.mark({ ok, tostring(err):find('unknown field `filename`', 1, true) ~= nil })
""",
    )
    # AMP stays ahead of the HTML part, which some clients only render when it is last.
    assert marks[0] == ["0.0", "0.1", "0.2", 1, "logo.png", True, "logo", "1"]
    assert marks[1] == "mr-boundary"
    assert marks[2] == [False, True]
