"""Every reply of the ESMTP command set, on a real listener, byte for byte."""

from __future__ import annotations

import asyncio

import pytest

from tests.reception.harness import HOSTNAME
from tests.smtp.conftest import SmtpEnv, StartSmtp


async def test_greeting_is_hostname_and_banner(start_smtp: StartSmtp) -> None:
    env = await start_smtp(banner="kumocore ready")
    client = await env.client()
    reply = await client.read_reply()
    assert (reply.code, reply.text) == (220, f"{HOSTNAME} kumocore ready")


async def test_default_banner_names_kumocore(smtp: SmtpEnv) -> None:
    client = await smtp.client()
    assert str(await client.read_reply()) == f"220 {HOSTNAME} kumocore ESMTP"


async def test_ehlo_advertises_extensions_and_starttls_before_tls(smtp: SmtpEnv) -> None:
    client = await smtp.client()
    reply = await client.hello("client.test")
    assert reply.code == 250
    assert reply.lines == (
        f"{HOSTNAME} Aloha client.test", "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
        "SMTPUTF8", f"SIZE {20 * 1024 * 1024}", "STARTTLS")


async def test_ehlo_size_follows_max_message_size(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_message_size="1 MiB")
    reply = await (await env.client()).hello()
    assert "SIZE 1048576" in reply.lines


async def test_helo_answers_with_hostname(smtp: SmtpEnv) -> None:
    client = await smtp.client()
    await client.read_reply()
    assert str(await client.command("HELO old.client")) == f"250 {HOSTNAME} Hello old.client"


async def test_ehlo_without_domain_is_a_syntax_error(smtp: SmtpEnv) -> None:
    client = await smtp.client()
    await client.read_reply()
    assert str(await client.command("EHLO")) == "501 5.5.4 Syntax: EHLO hostname"
    assert str(await client.command("HELO")) == "501 5.5.4 Syntax: HELO hostname"


@pytest.mark.parametrize("name", ["a\x00b.example", "a\u2028b.example", "a\x85b.example"])
async def test_ehlo_with_a_control_character_is_refused_not_echoed(
    smtp: SmtpEnv, name: str
) -> None:
    # It would be echoed in the reply and written into the Received header, where a
    # parser may take U+2028 or NEL for a line break.
    client = await smtp.client()
    await client.read_reply()
    reply = await client.command(f"EHLO {name}")
    assert str(reply) == "501 5.5.4 EHLO hostname contains a control character"
    assert str(await client.command("EHLO good.example")).startswith("250")


async def test_simple_commands_reply_like_kumomta(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    assert str(await client.command("NOOP")) == "250 2.0.0 the goggles do nothing"
    assert str(await client.command("RSET")) == "250 2.0.0 Reset state"
    for verb in ("VRFY postmaster", "EXPN staff", "HELP"):
        assert str(await client.command(verb)) == "502 5.5.1 Command unimplemented"
    assert str(await client.command("QUIT")) == "221 2.0.0 So long, and thanks for all the fish!"
    assert await client.closed()


async def test_commands_are_case_insensitive(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    assert (await client.command("mail from:<a@example.com>")).code == 250
    assert (await client.command("rcpt To:<b@example.com>")).code == 250


async def test_unknown_command_is_refused_and_too_many_end_the_session(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    for _ in range(20):  # max_command_errors
        assert str(await client.command("FOO bar")) == "500 5.5.1 command not recognized"
    assert str(await client.command("FOO")) == f"421 4.7.0 {HOSTNAME} too many errors"
    assert await client.closed()


async def test_sequence_errors(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    assert str(await client.command("RCPT TO:<b@example.com>")) == \
        "503 5.5.0 MAIL FROM must be issued first"
    assert str(await client.command("DATA")) == "503 5.5.0 MAIL FROM must be issued first"
    assert (await client.command("MAIL FROM:<a@example.com>")).code == 250
    assert str(await client.command("MAIL FROM:<a@example.com>")) == \
        "503 5.5.0 MAIL FROM already issued; you must RSET first"
    assert str(await client.command("DATA")) == "503 5.5.0 RCPT TO must be issued first"
    await client.command("RSET")
    assert (await client.command("MAIL FROM:<a@example.com>")).code == 250


async def test_mail_and_rcpt_replies(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    assert str(await client.command("MAIL FROM:<a@example.com>")) == "250 2.1.0 OK"
    assert str(await client.command("RCPT TO:<b@example.com>")) == "250 2.1.5 OK"
    assert str(await client.command("DATA")) == "354 Send body; end with CRLF.CRLF"


async def test_null_sender_and_space_after_colon_are_accepted(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    assert (await client.command("MAIL FROM: <>")).code == 250
    assert (await client.command("RCPT TO: <b@example.com>")).code == 250


async def test_bad_addresses_get_553_with_enhanced_codes(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    reply = await client.command("MAIL FROM:<no-at-sign>")
    assert (reply.code, reply.text) == (553, "5.1.7 invalid sender address: missing @domain")
    reply = await client.command("MAIL FROM:<@relay.example:a@example.com>")
    assert reply.code == 553 and reply.text.startswith("5.1.7 invalid sender address")
    assert (await client.command("MAIL FROM:<a@example.com>")).code == 250
    for bad in ("<>", "<b@exa mple.com>", "<b@-example.com>", "<b..c@example.com>"):
        reply = await client.command(f"RCPT TO:{bad}")
        assert reply.code == 553, bad
        assert reply.text.startswith("5.1.3 invalid recipient address"), bad


async def test_malformed_commands_get_501(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    reply = await client.command("MAIL TO:<a@example.com>")
    assert reply.code == 501 and reply.text.startswith("5.5.4 Syntax: MAIL FROM:<address>")
    reply = await client.command("MAIL FROM:<a@example.com")
    assert reply.code == 501 and "unbalanced angle brackets" in reply.text
    reply = await client.command("MAIL FROM:<a@example.com> SIZE")
    assert str(reply) == "501 5.5.4 SIZE takes a number of octets"
    reply = await client.command("MAIL FROM:<a@example.com> BODY=BINARYMIME")
    assert str(reply) == "501 5.5.4 BODY can only be one of 7BIT, 8BITMIME"
    assert str(await client.command("DATA now")) == "503 5.5.0 MAIL FROM must be issued first"


async def test_size_that_is_not_one_to_twenty_ascii_digits_gets_501(smtp: SmtpEnv) -> None:
    # "²" is a digit to str.isdigit but not a number to int: refused, not an internal error.
    client = await smtp.session()
    for size in ("²", "1" * 21, "-5"):
        reply = await client.command(f"MAIL FROM:<a@example.com> SIZE={size}")
        assert str(reply) == "501 5.5.4 SIZE takes a number of octets", size
    reply = await client.command("MAIL FROM:<a@example.com> SIZE=" + "9" * 20)
    assert reply.code == 552  # RFC 1870 allows 20 digits: a size, and too big


async def test_unknown_parameters_get_555(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    reply = await client.command("MAIL FROM:<a@example.com> RET=HDRS")
    assert str(reply) == "555 5.5.4 MAIL FROM parameters not recognized or not implemented"
    reply = await client.command(
        "MAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8 SIZE=100 AUTH=<>")
    assert reply.code == 250
    reply = await client.command("RCPT TO:<b@example.com> NOTIFY=NEVER")
    assert str(reply) == "555 5.5.4 RCPT TO parameters not recognized or not implemented"


async def test_bare_lf_or_cr_inside_a_command_is_refused(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    await client.send(b"MAIL FROM:<a@example.com>\nRCPT TO:<b@example.com>\r\n")
    assert str(await client.read_reply()) == "501 5.5.2 bare CR or LF in command line"
    await client.send(b"NOOP\rNOOP\r\n")
    assert str(await client.read_reply()) == "501 5.5.2 bare CR or LF in command line"
    assert (await client.command("MAIL FROM:<a@example.com>")).code == 250


async def test_command_line_over_the_limit_gets_500_and_session_continues(
    smtp: SmtpEnv,
) -> None:
    client = await smtp.session()
    reply = await client.command("NOOP " + "x" * 1200)
    assert str(reply) == "500 5.2.3 line too long"
    assert (await client.command("NOOP")).code == 250


async def test_invalid_utf8_command_is_refused(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    await client.send(b"MAIL FROM:<\xff@example.com>\r\n")
    assert str(await client.read_reply()) == "500 5.5.2 command line is not valid UTF-8"


async def test_utf8_addresses_are_accepted(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    _, final = await client.send_mail(
        "jörg@bücher.example", ["δοκιμή@παράδειγμα.example"], "Subject: utf8\r\n\r\nhi\r\n")
    assert final.code == 250
    assert smtp.messages[0].recipient.email == "δοκιμή@παράδειγμα.example"


async def test_pipelined_commands_get_replies_in_order(smtp: SmtpEnv) -> None:
    client = await smtp.client()
    await client.read_reply()
    await client.send(
        "EHLO pipe.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
        "RCPT TO:<c@example.com>\r\nDATA\r\n")
    replies = [await client.read_reply() for _ in range(5)]
    assert [r.code for r in replies] == [250, 250, 250, 250, 354]
    await client.send("Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert (await client.read_reply()).text.startswith("OK ids=")
    assert (await client.read_reply()).code == 221
    assert len(smtp.messages) == 2


async def test_commands_pipelined_before_a_half_close_are_all_answered(smtp: SmtpEnv) -> None:
    client = await smtp.client()
    await client.read_reply()
    await client.send("EHLO pipe.test\r\nNOOP\r\nQUIT\r\n")
    client.writer.write_eof()
    codes = [(await client.read_reply()).code for _ in range(3)]
    assert codes == [250, 250, 221]


async def test_idle_client_gets_421_and_is_disconnected(start_smtp: StartSmtp) -> None:
    env = await start_smtp(client_timeout="0.3s")
    client = await env.session()
    reply = await client.read_reply(timeout=3)
    assert str(reply) == f"421 4.3.2 {HOSTNAME} idle too long"
    assert await client.closed()


async def test_a_slow_but_active_client_is_not_timed_out(start_smtp: StartSmtp) -> None:
    env = await start_smtp(client_timeout="0.4s")
    client = await env.session()
    for _ in range(4):
        await asyncio.sleep(0.2)
        assert (await client.command("NOOP")).code == 250


async def test_remaining_syntax_errors(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    assert str(await client.command("STARTTLS now")) == "501 5.5.4 Syntax: STARTTLS"
    assert str(await client.command("MAIL FROM:<a@example.com> SMTPUTF8=yes")) == \
        "501 5.5.4 SMTPUTF8 takes no value"
    assert (await client.command("MAIL FROM:<a@example.com>")).code == 250
    reply = await client.command("RCPT FROM:<b@example.com>")
    assert reply.code == 501 and reply.text.startswith("5.5.4 Syntax: RCPT TO:<address>")
    assert (await client.command("RCPT TO:<b@example.com>")).code == 250
    assert str(await client.command("DATA now")) == "501 5.5.4 Syntax: DATA"
