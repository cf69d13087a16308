"""Outbound SMTP AUTH PLAIN (``smtp_auth_plain_username`` / ``smtp_auth_plain_password``).

KumoMTA's rules: when a username is set, every connection of the path authenticates
after EHLO (and STARTTLS). The credential is never sent in clear text unless
``allow_smtp_auth_plain_without_tls``, and never over a TLS session whose certificate was
not verified (``OpportunisticInsecure``/``RequiredInsecure``) unless
``allow_smtp_auth_plain_without_valid_certificate``: an active attacker could capture it.
The password is a KumoMTA key source (a file name or ``{ key_data = ... }``).

A refusal, or a failed AUTH, fails the connection with a 4xx reply, so the messages are
retried on the queue's schedule (KumoMTA treats it as a failed connection too).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from kumocore.mail.response import Response

if TYPE_CHECKING:
    from kumocore.config.egress import EgressPathConfig


class AuthRefused(Exception):
    """AUTH cannot or did not succeed; ``response`` is the 4xx reply for the queue."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.to_single_line())
        self.response = response


def precondition(path: EgressPathConfig, tls: bool, verified: bool, where: str) -> None:
    """Raise :class:`AuthRefused` when the session may not carry the credential."""
    if not tls and not path.allow_smtp_auth_plain_without_tls:
        raise AuthRefused(Response.parse(
            451, f"4.7.0 TLS is not enabled and AUTH PLAIN is required. Skipping ({where})"))
    if tls and not verified and not path.allow_smtp_auth_plain_without_valid_certificate:
        raise AuthRefused(Response.parse(
            451, "4.7.0 TLS peer certificate was not validated and AUTH PLAIN requires a "
            f"valid certificate. Skipping ({where})"))


def plain_initial_response(path: EgressPathConfig) -> str:
    """The base64 ``\\0user\\0password`` of RFC 4616 (no authorization identity)."""
    from kumocore.policy.secrets import load_secret

    username = path.smtp_auth_plain_username or ""
    source = path.smtp_auth_plain_password
    password = b"" if source is None else load_secret(source)
    try:
        password.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthRefused(Response.parse(
            451, "4.7.0 smtp_auth_plain_password is not UTF8")) from None
    token = b"\0" + username.encode("utf-8") + b"\0" + password
    return base64.b64encode(token).decode("ascii")


def failed(reply: Response, username: str, where: str) -> AuthRefused:
    """The connection failure that stands for the server refusing our AUTH."""
    return AuthRefused(Response.parse(
        451, f"4.7.0 authenticating as {username} via SMTP AUTH PLAIN to {where}: "
        f"{reply.to_single_line()[:300]}", command="AUTH"))
