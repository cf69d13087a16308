"""SMTP AUTH PLAIN (RFC 4616) and LOGIN, validated by the ``smtp_server_auth_plain`` event.

AUTH is offered only once TLS is active, and refused before it: credentials never cross
the network in clear text. Both mechanisms end up in the same policy event
(``authz, authc, password, conn_meta``); LOGIN has no authorization identity, so ``authz``
is the user name, as KumoMTA does for a PLAIN response without one. The policy answers
true, false, or an AuthInfo (identities and groups). On success the identities are recorded
in the connection meta (``authn_id``, ``authz_id``), and so in every message received on
the connection, and join the session's AuthInfo (``conn_meta:auth_info()``); each attempt
is an ``Authentication`` record of ``kumo.aaa.configure_acct_log``, as for HTTP.

Replies follow KumoMTA's, except that AUTH before STARTTLS gets RFC 4954's
``538 5.7.11`` (KumoMTA answers 524), and three failed attempts end the connection so a
client cannot guess passwords at line speed. Reconnecting does not help a guesser: after
``max_auth_failures_per_peer`` failures from one IP within ``auth_failure_window`` the
listener answers every AUTH from that IP with ``454 4.7.0`` without asking the policy —
even one with the right password, so a guesser learns nothing — until the window has
slid past its failures.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from kumocore.auth_info import AclAuthInfo, Identity
from kumocore.conn_meta import AUTHN_CONTEXT, AUTHZ_CONTEXT

if TYPE_CHECKING:
    from kumocore.reception.smtp.session import EsmtpSession

MECHANISMS = ("PLAIN", "LOGIN")
MAX_AUTH_FAILURES = 3
#: Longest line accepted in an AUTH exchange (KumoMTA's limit).
AUTH_LINE_LIMIT = 16384

Credentials = tuple[str, str, str]  # (authz, authc, password)


class _AuthAbort(Exception):
    """The exchange failed; the reply was already sent."""


async def auth(session: EsmtpSession, arg: str) -> None:
    words = arg.split()
    if not 1 <= len(words) <= 2:
        await session.syntax_error(501, "5.5.4 Syntax: AUTH mechanism [initial-response]")
        return
    mechanism = words[0].upper()
    initial = words[1] if len(words) == 2 else None
    if session.authn_id is not None:
        await session.reply(503, "5.5.1 AUTH me once, can't get authed again!")
    elif session.txn is not None:
        await session.reply(503, "5.5.1 AUTH not permitted inside a transaction")
    elif mechanism not in MECHANISMS:
        await session.reply(504, f"5.5.4 AUTH {mechanism} not supported")
    elif not session.tls_active:
        await session.reply(538, f"5.7.11 AUTH {mechanism} requires an encrypted channel")
    elif session.listener.auth_failures.blocked(session.peer_ip):
        await session.reply(454, f"4.7.0 too many AUTH failures from {session.peer_ip}; "
                            "try again later")
    else:
        try:
            if mechanism == "PLAIN":
                credentials = await _plain(session, initial)
            else:
                credentials = await _login(session, initial)
        except _AuthAbort:
            return
        await _validate(session, credentials)


async def _validate(session: EsmtpSession, credentials: Credentials) -> None:
    authz, authc, password = credentials
    authz = authz or authc
    answer = await session.runtime.hooks.smtp_server_auth_plain(
        authz, authc, password, session.conn_meta)
    before = session.conn_meta.auth_info
    if answer is False:
        _account(session, authc, False, before)
        await _refuse(session)
        return
    if answer is True:
        proven = AclAuthInfo(None, (Identity(authz, AUTHZ_CONTEXT), Identity(authc, AUTHN_CONTEXT)))
    else:
        proven = answer
    authn, authz = _names(proven)
    session.authn_id = authn
    session.conn_meta["authz_id"] = authz
    session.conn_meta["authn_id"] = authn
    session.conn_meta.auth_info = before.merged(proven)
    _account(session, authc, True, session.conn_meta.auth_info)
    await session.reply(235, "2.7.0 AUTH OK!")


def _names(info: AclAuthInfo) -> tuple[str, str]:
    """``authn_id`` and ``authz_id`` from the identities the session proved, as KumoMTA
    reads an AuthInfo the policy returned: the identity with the authentication context,
    else the first; the one with the authorization context, else the authentication one."""
    by_context = {i.context: i.identity for i in reversed(info.identities)}
    authn = by_context.get(AUTHN_CONTEXT, info.identities[0].identity)
    return authn, by_context.get(AUTHZ_CONTEXT, authn)


def _account(session: EsmtpSession, authc: str, success: bool, info: AclAuthInfo) -> None:
    """The ``Authentication`` record of ``kumo.aaa.configure_acct_log``, as for HTTP."""
    acct = session.runtime.http_access.acct
    if acct is not None:
        acct.authentication(Identity(authc, AUTHN_CONTEXT), success, info)


async def _refuse(session: EsmtpSession) -> None:
    session.listener.auth_failures.record(session.peer_ip)
    session.auth_failures += 1
    if session.auth_failures >= MAX_AUTH_FAILURES:
        await session.reply(
            421, f"4.7.0 {session.config.hostname} too many AUTH failures", close=True)
    else:
        await session.reply(535, "5.7.8 AUTH invalid")


async def _plain(session: EsmtpSession, initial: str | None) -> Credentials:
    response = await _decoded(session, initial if initial is not None else await _ask(session, ""))
    fields = response.split(b"\0")
    if len(fields) != 3:
        await session.reply(501, "5.5.2 Invalid decoded PLAIN response")
        raise _AuthAbort
    authz = await _text(session, fields[0], "PLAIN")
    authc = await _text(session, fields[1], "PLAIN")
    password = await _text(session, fields[2], "PLAIN")
    return authz, authc, password


async def _login(session: EsmtpSession, initial: str | None) -> Credentials:
    user_b64 = initial if initial is not None else await _ask(session, "Username:")
    user = await _text(session, await _decoded(session, user_b64), "LOGIN")
    password = await _text(
        session, await _decoded(session, await _ask(session, "Password:")), "LOGIN")
    return "", user, password


async def _ask(session: EsmtpSession, prompt: str) -> str:
    """Send a ``334`` challenge and return the client's (still base64) answer."""
    await session.reply(334, base64.b64encode(prompt.encode()).decode())
    raw = await session.read_line(AUTH_LINE_LIMIT)
    if raw is None:
        await session.reply(500, "5.5.6 authentication exchange line too long")
        raise _AuthAbort
    answer = raw[:-2].decode("ascii", "replace").strip()
    if answer == "*":
        await session.reply(501, "5.5.0 AUTH cancelled by client")
        raise _AuthAbort
    return answer


async def _decoded(session: EsmtpSession, text: str) -> bytes:
    if text == "=":  # RFC 4954: an empty initial response
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        await session.reply(501, "5.5.2 Invalid base64 response")
        raise _AuthAbort from None


async def _text(session: EsmtpSession, raw: bytes, mechanism: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        await session.reply(501, f"5.5.2 Invalid UTF8 in decoded {mechanism} response")
        raise _AuthAbort from None
