"""The set-up of an outbound SMTP session, between the connect and its first transaction.

:class:`SessionSetup` (between :class:`~kumocore.delivery.client_io.SessionIo` and
:class:`kumocore.delivery.client.SmtpClientConnection`) reads the banner and sends EHLO
(LHLO for LMTP), then STARTTLS as the path's ``enable_tls`` asks: under DANE the
certificate must match one of the TLSA records, and plaintext sent with or after the
``220`` is refused as a response injection. Then AUTH PLAIN, when the path has a
credential. A refusal or a failure raises a
:class:`~kumocore.delivery.client_failure.ConnectFailure`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from kumocore.delivery import auth
from kumocore.delivery.client_failure import ConnectFailure
from kumocore.delivery.client_io import SessionIo, path_timeout
from kumocore.delivery.tls import SessionInfo, client_context, session_info, verifies
from kumocore.errors import ConfigError
from kumocore.mail.response import Response


class SessionSetup(SessionIo):
    """The greeting, EHLO, STARTTLS (with DANE) and AUTH of a client session."""

    async def greet(self, ehlo_domain: str) -> None:
        banner = await self.replies.read("banner", path_timeout(self.path, "banner_timeout", 60))
        if banner.code != 220:
            raise ConnectFailure.refused(banner)
        await self._ehlo(ehlo_domain)
        mode = self.tls_mode
        if mode != "Disabled" and "STARTTLS" in self.extensions:
            await self._starttls(mode, ehlo_domain)
        elif self.dane is not None:
            raise ConnectFailure(
                Response.parse(
                    451,
                    (
                        f"4.7.4 DANE: {self.dane.base_name} has TLSA records, so TLS is required, "
                        f"but {self.peer['name']} does not offer STARTTLS"
                    ),
                )
            )
        elif mode.startswith("Required"):
            raise ConnectFailure(
                Response.parse(
                    451,
                    (  # KumoMTA's words
                        f"4.7.4 tls policy is {mode} but STARTTLS is not advertised by "
                        f"{self.peer['name']} [{self.peer['addr']}]"
                    ),
                )
            )
        if getattr(self.path, "smtp_auth_plain_username", None):
            await self._auth_plain()
        if not self.in_step():
            # More replies than commands (an EHLO reply with a line after its last): the
            # first transaction would read them as its own.
            extra = self.replies.buffered()
            self.abort()
            raise ConnectFailure(
                Response.parse(
                    421,
                    (
                        f"4.5.0 protocol violation by {self.peer['name']}: {extra} bytes of "
                        f"replies nobody asked for after {self.replies.command}"
                    ),
                    command=self.replies.command,
                )
            )

    async def _auth_plain(self) -> None:
        """AUTH PLAIN with the path's credential (see :mod:`kumocore.delivery.auth`)."""
        where = f"{self.peer['name']} [{self.peer['addr']}]"
        try:
            auth.precondition(self.path, self.tls, self.session.tls_verified, where)
            try:
                token = auth.plain_initial_response(self.path)
            except ConfigError as exc:  # the password's key source cannot be read
                raise auth.AuthRefused(Response.parse(451, f"4.7.0 {exc}")) from exc
            reply = await self._command(
                f"AUTH PLAIN {token}", "AUTH", path_timeout(self.path, "auth_timeout", 60)
            )
            if reply.code != 235:
                raise auth.failed(reply, str(self.path.smtp_auth_plain_username), where)
        except auth.AuthRefused as refused:
            raise ConnectFailure(refused.response) from refused

    async def _ehlo(self, ehlo_domain: str) -> None:
        # ``use_lmtp``: RFC 2033's LHLO in its place (after STARTTLS too), as KumoMTA
        # does; the rest of the session is the same with one recipient per transaction,
        # whose one reply after the dot is the LMTP server's reply for that recipient.
        verb = "LHLO" if getattr(self.path, "use_lmtp", False) else "EHLO"
        reply = await self._command(
            f"{verb} {ehlo_domain}", verb, path_timeout(self.path, "ehlo_timeout", 300)
        )
        if reply.code != 250:
            raise ConnectFailure.refused(reply)
        self.extensions = self.replies.last_extensions

    async def _starttls(self, mode: str, ehlo_domain: str) -> None:
        reply = await self._command(
            "STARTTLS", "STARTTLS", path_timeout(self.path, "starttls_timeout", 5)
        )
        if reply.code != 220:
            # In every mode, as KumoMTA's client: a peer that offered STARTTLS and then
            # refused it gets no mail in clear text (a refusal is not a failed handshake,
            # so it is not remembered as broken TLS either).
            raise ConnectFailure.refused(reply)
        self._refuse_injection("with")
        try:
            # With TLSA records the chain is checked against them after the handshake,
            # not against the public CAs.
            context = client_context(self.path, "RequiredInsecure" if self.dane else mode)
        except Exception as exc:  # our configuration (client certificate), not the peer
            self.abort()
            raise ConnectFailure(
                Response.parse(
                    451, f"4.7.0 client TLS configuration cannot be used: {str(exc)[:200]}"
                )
            ) from exc
        try:
            await asyncio.wait_for(
                self.writer.start_tls(context, server_hostname=self.peer["name"]),
                path_timeout(self.path, "starttls_timeout", 5),
            )
        except Exception as exc:
            self.abort()
            raise ConnectFailure(
                Response.parse(
                    421,
                    f"4.7.5 TLS handshake with {self.peer['name']} failed: "
                    f"{str(exc)[:200] or type(exc).__name__}",
                ),
                tls_broken=True,
            ) from exc
        # Plaintext that arrived before the handshake took over the socket sits in the
        # same buffer as what TLS decrypts: refuse it here too.
        self._refuse_injection("after")
        self.replies.reset()  # nothing read before the handshake may be trusted
        self.tls = True
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.session = session_info(ssl_object, verifies(mode))
            if self.dane is not None:
                self.session = self._check_dane(ssl_object)
        try:
            await self._ehlo(ehlo_domain)
        except ConnectFailure as failure:
            failure.tls_broken = True
            raise

    def _check_dane(self, ssl_object: Any) -> SessionInfo:
        """The session, authenticated by a TLSA record; else the connection is dropped
        before any SMTP command went over it (see :mod:`kumocore.delivery.dane_match`)."""
        from kumocore.delivery.dane_match import DaneMismatch, check_chain, peer_chain

        assert self.dane is not None
        try:
            cert, _record = check_chain(
                self.dane.records, peer_chain(ssl_object), self.peer["name"]
            )
        except DaneMismatch as mismatch:
            self.abort()
            records = ", ".join(str(r) for r in self.dane.records)
            raise ConnectFailure(
                Response.parse(
                    421,
                    (
                        f"4.7.5 DANE: no TLSA record of {self.dane.base_name} ({records}) matched "
                        f"the certificate of {self.peer['name'].rstrip('.')} "
                        f"[{self.peer['addr']}]: "
                        f"{mismatch}"
                    )[:900],
                    command="STARTTLS",
                )
            ) from mismatch
        # As KumoMTA (OpenSSL's DANE authority): the subject of the matched certificate.
        subject = tuple(attribute.rfc4514_string() for attribute in cert.subject)
        return dataclasses.replace(
            self.session, tls_verified=True, tls_peer_subject_name=subject or None
        )

    def _refuse_injection(self, when: str) -> None:
        """CVE-2011-0411: bytes sent with or after ``220`` to STARTTLS are plaintext an
        on-path attacker may have added; never read them as replies over TLS."""
        extra = self.replies.buffered()
        if extra:
            self.abort()  # not one more byte on this connection, not even QUIT
            raise ConnectFailure(
                Response.parse(
                    421,
                    f"4.7.0 {self.peer['name']} sent {extra} bytes {when} its 220 "
                    "reply to STARTTLS (possible response injection); connection closed",
                    command="STARTTLS",
                )
            )
