"""The ESMTP commands (except AUTH and DATA, which have their own modules).

Reply texts are KumoMTA's, with an enhanced status code wherever KumoMTA omits one
(kumocore advertises ENHANCEDSTATUSCODES, RFC 2034). Policy events run before the reply;
a :class:`~kumocore.Rejection` they raise propagates to the command loop, which sends it.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING

from kumocore.digits import decimal
from kumocore.mail.address import AddressError, parse_envelope_address
from kumocore.reception.smtp.auth import auth
from kumocore.reception.smtp.parse import CommandSyntaxError, parse_params, split_path
from kumocore.reception.smtp.proxied import xclient
from kumocore.reception.smtp.receive import data
from kumocore.reception.smtp.relay import check_relaying, has_routing_syntax
from kumocore.reception.smtp.session import RECIPIENT_OVERSHOOT_LIMIT, CommandHandler
from kumocore.reception.smtp.session_state import Transaction
from kumocore.reception.smtp.tls_contexts import starttls_context

if TYPE_CHECKING:
    from kumocore.reception.smtp.session import EsmtpSession

_BODY_TYPES = ("7BIT", "8BITMIME")


async def ehlo(session: EsmtpSession, arg: str) -> None:
    await _hello(session, arg, extended=True)


async def helo(session: EsmtpSession, arg: str) -> None:
    await _hello(session, arg, extended=False)


async def _hello(session: EsmtpSession, arg: str, *, extended: bool) -> None:
    verb = "EHLO" if extended else "HELO"
    domain = arg.split(" ", 1)[0]
    if not domain:
        await session.syntax_error(501, f"5.5.4 Syntax: {verb} hostname")
        return
    if not domain.isprintable():
        # NUL, other controls, U+0085 and U+2028: echoed in the reply and written into
        # the Received header, where a parser may take them for line breaks.
        await session.syntax_error(501, f"5.5.4 {verb} hostname contains a control character")
        return
    session.reset_transaction()  # RFC 5321 4.1.4: EHLO implies RSET
    extensions = _extensions(session)
    # The policy sees (and may replace) what EHLO will advertise; HELO advertises nothing
    # but the handler still gets the list, as in KumoMTA.
    extensions = await session.runtime.hooks.smtp_server_ehlo(
        domain, session.conn_meta, extensions)
    session.ehlo_domain = domain
    session.esmtp = extended
    hostname = session.config.hostname
    if not extended:
        await session.reply(250, f"{hostname} Hello {domain}")
    else:
        await session.reply(250, "\n".join([f"{hostname} Aloha {domain}", *extensions]))
    # As KumoMTA: the connection meta learns the name after the event and after the reply
    # (smtp_server_rewrite_response of this reply still sees the previous one, or none).
    session.conn_meta["ehlo_domain"] = domain


def _extensions(session: EsmtpSession) -> list[str]:
    """The ESMTP extensions this session advertises (the EHLO reply after its greeting)."""
    lines = [
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SMTPUTF8",
        f"SIZE {session.config.max_message_size}",
    ]
    if session.tls_active:
        lines.append("AUTH PLAIN LOGIN")  # credentials only ever travel encrypted
    elif session.tls_context is not None:
        lines.append("STARTTLS")
    if session.config.allow_xclient:
        lines.append("XCLIENT ADDR PORT DESTADDR DESTPORT")
    return lines


async def mail(session: EsmtpSession, arg: str) -> None:
    if session.txn is not None:
        await session.reply(503, "5.5.0 MAIL FROM already issued; you must RSET first")
        return
    try:
        path, tokens = split_path(arg, "FROM:")
        params = parse_params(tokens)
    except CommandSyntaxError as exc:
        await session.syntax_error(501, f"5.5.4 Syntax: MAIL FROM:<address> ({exc})")
        return
    if not await _mail_params_ok(session, params):
        return
    try:
        sender = parse_envelope_address(path, allow_null=True)
    except AddressError as exc:
        await session.reply(553, f"5.1.7 invalid sender address: {exc.reason}")
        return
    await session.runtime.hooks.smtp_server_mail_from(sender, session.conn_meta)
    session.txn = Transaction(sender, perf_counter())
    await session.reply(250, "2.1.0 OK")


async def _mail_params_ok(session: EsmtpSession, params: dict[str, str | None]) -> bool:
    """Check MAIL FROM parameters; reply and return False when one is refused."""
    if "SIZE" in params:
        size = decimal(params.pop("SIZE") or "", max_digits=20)  # RFC 1870: 1*20DIGIT
        if size is None:
            await session.syntax_error(501, "5.5.4 SIZE takes a number of octets")
            return False
        if size > session.config.max_message_size:
            # RFC 1870: refuse early instead of after the client sent all of it.
            await session.reply(552, "5.3.4 message size exceeds fixed maximum message size")
            return False
    if "BODY" in params and str(params.pop("BODY")).upper() not in _BODY_TYPES:
        await session.syntax_error(501, "5.5.4 BODY can only be one of 7BIT, 8BITMIME")
        return False
    if "SMTPUTF8" in params and params.pop("SMTPUTF8") is not None:
        await session.syntax_error(501, "5.5.4 SMTPUTF8 takes no value")
        return False
    params.pop("AUTH", None)  # RFC 4954 AUTH=<identity>: accepted and ignored
    if params:
        await session.reply(555, "5.5.4 MAIL FROM parameters not recognized or not implemented")
        return False
    return True


async def rcpt(session: EsmtpSession, arg: str) -> None:
    txn = session.txn
    if txn is None:
        await session.reply(503, "5.5.0 MAIL FROM must be issued first")
        return
    try:
        path, tokens = split_path(arg, "TO:")
        params = parse_params(tokens)
    except CommandSyntaxError as exc:
        await session.syntax_error(501, f"5.5.4 Syntax: RCPT TO:<address> ({exc})")
        return
    if params:
        await session.reply(555, "5.5.4 RCPT TO parameters not recognized or not implemented")
        return
    try:
        recipient = parse_envelope_address(path, allow_null=False)
    except AddressError as exc:
        await session.reply(553, f"5.1.3 invalid recipient address: {exc.reason}")
        return
    disposition = await check_relaying(
        session.domains, peer_ip=session.peer_ip, sender=txn.sender, recipient=recipient)
    if not disposition.accept_rcpt_to or (
            not disposition.trusted and has_routing_syntax(recipient.user)):
        await session.reply(550, f"5.7.1 relaying not permitted for {session.peer_address}")
        return
    if len(txn.recipients) >= session.config.max_recipients_per_message:
        # Not an error for a client that sends the rest in a new transaction, up to a
        # point (as Postfix's smtpd_recipient_overshoot_limit).
        session.recipient_overshoot += 1
        await session.reply(452, "4.5.3 too many recipients",
                            error=session.recipient_overshoot > RECIPIENT_OVERSHOOT_LIMIT)
        return
    if session.rcpt_count >= session.config.max_messages_per_connection:
        if not txn.recipients:
            await session.reply(421, f"4.5.3 {session.config.hostname} too many recipients "
                                "on this connection", close=True)
        else:
            await session.reply(452, "4.5.3 too many recipients on this connection")
        return
    session.rcpt_count += 1  # counted before the event, as KumoMTA does
    await session.runtime.hooks.smtp_server_mail_rcpt_to(recipient, session.conn_meta)
    txn.recipients.append(recipient)
    await session.reply(250, "2.1.5 OK")


async def rset(session: EsmtpSession, arg: str) -> None:
    session.reset_transaction()
    await session.reply(250, "2.0.0 Reset state")


async def noop(session: EsmtpSession, arg: str) -> None:
    await session.reply(250, "2.0.0 the goggles do nothing")


async def quit_(session: EsmtpSession, arg: str) -> None:
    await session.reply(221, "2.0.0 So long, and thanks for all the fish!", close=True)


async def unimplemented(session: EsmtpSession, arg: str) -> None:
    await session.reply(502, "5.5.1 Command unimplemented")


async def starttls(session: EsmtpSession, arg: str) -> None:
    if arg:
        await session.syntax_error(501, "5.5.4 Syntax: STARTTLS")
    elif session.tls_active:
        await session.reply(501, "5.5.1 Cannot STARTTLS as TLS is already active")
    elif session.tls_context is None:
        await session.reply(454, "4.7.0 TLS not available")
    elif (context := await starttls_context(session)) is not None:  # else 421 sent
        await session.reply(220, "2.0.0 Ready to Start TLS")
        await session.start_tls(context)


COMMANDS: dict[str, CommandHandler] = {
    "EHLO": ehlo,
    "HELO": helo,
    "MAIL": mail,
    "RCPT": rcpt,
    "DATA": data,
    "RSET": rset,
    "NOOP": noop,
    "QUIT": quit_,
    "STARTTLS": starttls,
    "AUTH": auth,
    "XCLIENT": xclient,
    "VRFY": unimplemented,
    "EXPN": unimplemented,
    "HELP": unimplemented,
}
