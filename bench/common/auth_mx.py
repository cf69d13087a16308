"""A submission-style MX on loopback: aiosmtpd with STARTTLS and an AUTH PLAIN check.

Like a smarthost of a provider: AUTH is offered only after STARTTLS
(``auth_require_tls``), and with ``auth_required`` every transaction needs it. It records
the messages it accepted with the user that authenticated, and every AUTH attempt (so a
test can prove a credential was never sent).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from kumocore.reception.tls import self_signed_pem


@dataclass
class AuthMxState:
    messages: list[tuple[str, str, bytes, str | None]] = field(default_factory=list)
    auth_attempts: list[tuple[str, bool]] = field(default_factory=list)
    tls_sessions: int = 0
    client_subjects: list[str] = field(default_factory=list)


class _Handler:
    def __init__(self, state: AuthMxState) -> None:
        self.state = state

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        user = session.auth_data if isinstance(session.auth_data, str) else None
        for rcpt in envelope.rcpt_tos:
            self.state.messages.append(
                (envelope.mail_from or "", rcpt, envelope.original_content or b"", user))
        return "250 2.0.0 queued"

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        self.state.tls_sessions += 1
        cert = session.ssl.get("peercert") if isinstance(session.ssl, dict) else None
        if cert:
            self.state.client_subjects.append(dict(x[0] for x in cert["subject"])["commonName"])
        return True


class AuthMx:
    """``await AuthMx(host, hostname, users).start()``; ``ca_file`` is its certificate."""

    def __init__(self, host: str, hostname: str, users: dict[str, str], tmp: Path,
                 *, starttls: bool = True, silent: bool = False,
                 require_auth: bool = True, client_ca: Path | None = None) -> None:
        self.require_auth = require_auth
        self.host, self.hostname, self.users = host, hostname, users
        self.silent = silent  # never answer AUTH (a stalling server)
        self.state = AuthMxState()
        self.starttls = starttls
        cert, key = self_signed_pem(hostname)
        self.ca_file = tmp / f"{hostname}.pem"
        self.ca_file.write_bytes(cert)
        key_file = tmp / f"{hostname}.key"
        key_file.write_bytes(key)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.ca_file, key_file)
        if client_ca is not None:  # ask for a client certificate and check it
            self.context.verify_mode = ssl.CERT_OPTIONAL
            self.context.load_verify_locations(client_ca)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(user) == password
        self.state.auth_attempts.append((user, ok))
        if self.silent:  # handled=True with no reply sent: the client hears nothing
            return AuthResult(success=False, handled=True)
        # handled=False: aiosmtpd answers a failure itself (535 5.7.8).
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    async def start(self) -> AuthMx:
        handler = _Handler(self.state)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                handler, hostname=self.hostname,
                tls_context=self.context if self.starttls else None,
                authenticator=self._authenticate, auth_required=self.require_auth,
                auth_require_tls=True, auth_exclude_mechanism=["LOGIN"],
            ),
            self.host, 0,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
