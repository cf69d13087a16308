"""STARTTLS (with the discard of pre-TLS pipelined input) and SMTP AUTH PLAIN/LOGIN."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import aiosmtplib

from bench.common.smtp_client import RawSmtpClient, insecure_client_context
from kumocore import hookimpl
from kumocore.config import ListenerDomain
from kumocore.reception.smtp.server import EsmtpListener
from kumocore.reception.tls import self_signed_pem
from tests.reception.harness import HOSTNAME
from tests.smtp.conftest import SmtpEnv, StartSmtp


class Credentials:
    """An smtp_server_auth_plain policy accepting one user; records its calls."""

    def __init__(self, user: str = "alice", password: str = "s3cret") -> None:
        self.user, self.password = user, password
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []

    @hookimpl
    def kumo_smtp_server_auth_plain(
        self, authz: str, authc: str, password: str, conn_meta: dict[str, Any]
    ) -> bool:
        self.calls.append((authz, authc, password, dict(conn_meta)))
        return authc == self.user and password == self.password


def plain(authz: str, authc: str, password: str) -> str:
    return base64.b64encode(f"{authz}\0{authc}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def tls_session(env: SmtpEnv, source: str = "127.0.0.1") -> RawSmtpClient:
    client = await env.session(source)
    assert str(await client.starttls()) == "220 2.0.0 Ready to Start TLS"
    return client


async def test_starttls_then_ehlo_offers_auth_instead_of_starttls(smtp: SmtpEnv) -> None:
    client = await tls_session(smtp)
    reply = await client.command("EHLO secure.test")
    assert "AUTH PLAIN LOGIN" in reply.lines
    assert "STARTTLS" not in reply.lines
    assert str(await client.command("STARTTLS")) == \
        "501 5.5.1 Cannot STARTTLS as TLS is already active"


async def test_message_over_tls_records_tls_meta_and_esmtps(smtp: SmtpEnv) -> None:
    client = await tls_session(smtp)
    await client.command("EHLO secure.test")
    _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: tls\r\n\r\n")
    assert final.code == 250
    message = smtp.messages[0]
    assert message.meta["tls_protocol_version"] in ("TLSv1.2", "TLSv1.3")
    assert message.meta["tls_cipher"]
    assert message.meta["ehlo_domain"] == "secure.test"
    assert b"\twith ESMTPS id " in message.data


async def test_commands_pipelined_after_starttls_are_discarded(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    # A plaintext QUIT injected behind STARTTLS must never run inside the TLS session.
    await client.send("STARTTLS\r\nQUIT\r\n")
    assert (await client.read_reply()).code == 220
    await client.writer.start_tls(insecure_client_context())
    reply = await client.command("EHLO after.tls")
    assert reply.code == 250 and reply.lines[0].endswith("Aloha after.tls")
    assert (await client.command("NOOP")).code == 250


async def test_ehlo_state_is_forgotten_after_starttls(smtp: SmtpEnv) -> None:
    client = await tls_session(smtp)
    _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\n")
    assert final.code == 250
    message = smtp.messages[0]
    assert "ehlo_domain" not in message.meta
    assert message.data.split(b"\r\n")[1] == b"Received: from unspecified (127.0.0.1)"


async def test_configured_certificate_is_served(start_smtp: StartSmtp) -> None:
    cert_pem, key_pem = self_signed_pem("configured.example")
    env = await start_smtp(tls_certificate={"key_data": cert_pem.decode()},
                           tls_private_key={"key_data": key_pem.decode()})
    client = await tls_session(env)
    ssl_object = client.writer.get_extra_info("ssl_object")
    assert ssl_object is not None
    served = ssl_object.getpeercert(binary_form=True)
    assert served == ssl.PEM_cert_to_DER_cert(cert_pem.decode())


async def test_auth_is_neither_offered_nor_accepted_before_tls(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Credentials())
    client = await env.client()
    ehlo = await client.hello()
    assert not any(line.startswith("AUTH") for line in ehlo.lines)
    reply = await client.command(f"AUTH PLAIN {plain('', 'alice', 's3cret')}")
    assert str(reply) == "538 5.7.11 AUTH PLAIN requires an encrypted channel"


class RelayFromAuthz(Credentials):
    """KumoMTA's ``relay_from_authz`` (the listener-domain helper's option): a client
    authenticated as one of ``authz`` may relay for ``domain`` senders."""

    def __init__(self, domain: str, authz: list[str]) -> None:
        super().__init__()
        self.domain, self.authz = domain, authz

    @hookimpl
    def kumo_get_listener_domain(
        self, domain: str, listener: str, conn_meta: dict[str, Any]
    ) -> ListenerDomain | None:
        if domain != self.domain or conn_meta.get("authz_id") not in self.authz:
            return None
        peer = str(conn_meta["received_from"]).rpartition(":")[0]
        return ListenerDomain.from_options({"relay_from": [peer]})


async def _authenticated(env: SmtpEnv) -> RawSmtpClient:
    client = await tls_session(env, source="127.0.0.5")
    await client.command("EHLO submit.test")
    reply = await client.command(f"AUTH PLAIN {plain('', 'alice', 's3cret')}")
    assert str(reply) == "235 2.7.0 AUTH OK!"
    return client


async def test_auth_alone_does_not_let_an_untrusted_client_relay(
    start_smtp: StartSmtp,
) -> None:
    # As in KumoMTA: who may relay after AUTH is the policy's call (relay_from_authz),
    # else any account could send as any domain.
    env = await start_smtp(Credentials())
    client = await _authenticated(env)
    await client.command("MAIL FROM:<a@example.com>")
    reply = await client.command("RCPT TO:<b@other.example>")
    assert reply.code == 550 and reply.lines[0].startswith("5.7.1 relaying not permitted")
    assert env.messages == []


async def test_relay_from_authz_lets_the_listed_account_relay_for_its_domain_only(
    start_smtp: StartSmtp,
) -> None:
    credentials = RelayFromAuthz("example.com", ["alice"])
    env = await start_smtp(credentials)
    client = await _authenticated(env)
    _, final = await client.send_mail("a@example.com", ["b@other.example"], "Subject: x\r\n\r\n")
    assert final.code == 250
    message = env.messages[0]
    assert (message.meta["authn_id"], message.meta["authz_id"]) == ("alice", "alice")
    assert b"\twith ESMTPSA id " in message.data
    authz, authc, password, conn_meta = credentials.calls[0]
    assert (authz, authc, password) == ("alice", "alice", "s3cret")
    assert conn_meta["received_from"].startswith("127.0.0.5:")
    await client.command("RSET")
    await client.command("MAIL FROM:<a@elsewhere.example>")
    assert (await client.command("RCPT TO:<b@other.example>")).code == 550


async def test_auth_plain_with_challenge_and_explicit_authz(start_smtp: StartSmtp) -> None:
    credentials = Credentials()
    env = await start_smtp(credentials)
    client = await tls_session(env)
    assert str(await client.command("AUTH PLAIN")) == "334 "
    assert (await client.command(plain("boss", "alice", "s3cret"))).code == 235
    assert credentials.calls[0][:2] == ("boss", "alice")


async def test_auth_login_prompts_for_user_and_password(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Credentials())
    client = await tls_session(env)
    assert str(await client.command("AUTH LOGIN")) == f"334 {b64('Username:')}"
    assert str(await client.command(b64("alice"))) == f"334 {b64('Password:')}"
    assert str(await client.command(b64("s3cret"))) == "235 2.7.0 AUTH OK!"
    assert str(await client.command(f"AUTH LOGIN {b64('alice')}")) == \
        "503 5.5.1 AUTH me once, can't get authed again!"


async def test_wrong_password_gets_535_and_three_failures_disconnect(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(Credentials())
    client = await tls_session(env)
    for _ in range(2):
        reply = await client.command(f"AUTH PLAIN {plain('', 'alice', 'guess')}")
        assert str(reply) == "535 5.7.8 AUTH invalid"
    reply = await client.command(f"AUTH PLAIN {plain('', 'alice', 'guess')}")
    assert str(reply) == f"421 4.7.0 {HOSTNAME} too many AUTH failures"
    assert await client.closed()


async def test_without_an_auth_policy_every_login_fails(smtp: SmtpEnv) -> None:
    client = await tls_session(smtp)
    reply = await client.command(f"AUTH PLAIN {plain('', 'alice', 's3cret')}")
    assert str(reply) == "535 5.7.8 AUTH invalid"


async def test_auth_protocol_errors(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Credentials())
    client = await tls_session(env)
    assert str(await client.command("AUTH CRAM-MD5")) == "504 5.5.4 AUTH CRAM-MD5 not supported"
    assert str(await client.command("AUTH")) == \
        "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
    assert str(await client.command("AUTH PLAIN !!!")) == "501 5.5.2 Invalid base64 response"
    assert str(await client.command(f"AUTH PLAIN {b64('no-nuls')}")) == \
        "501 5.5.2 Invalid decoded PLAIN response"
    await client.command("AUTH LOGIN")
    assert str(await client.command("*")) == "501 5.5.0 AUTH cancelled by client"
    await client.command("MAIL FROM:<a@example.com>")
    assert str(await client.command(f"AUTH PLAIN {plain('', 'alice', 's3cret')}")) == \
        "503 5.5.1 AUTH not permitted inside a transaction"


async def test_aiosmtplib_client_can_starttls_login_and_send(start_smtp: StartSmtp) -> None:
    env = await start_smtp(RelayFromAuthz("example.com", ["alice"]))
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=env.port, start_tls=False,
                             tls_context=insecure_client_context(), source_address=("127.0.0.5", 0))
    await client.connect()
    await client.starttls()
    await client.login("alice", "s3cret")
    errors, response = await client.sendmail(
        "a@example.com", ["b@remote.example", "c@remote.example"],
        b"Subject: lib\r\n\r\nsent with aiosmtplib\r\n.leading dot\r\n")
    await client.quit()
    assert errors == {}
    assert response.startswith("OK ids=")
    assert len(env.messages) == 2
    assert env.messages[0].data.endswith(b"sent with aiosmtplib\r\n.leading dot\r\n")


async def test_listener_without_tls_offers_no_starttls(smtp: SmtpEnv) -> None:
    plain_listener = EsmtpListener(smtp.reception.runtime, smtp.listener.config, None)
    await plain_listener.start()
    try:
        client = await RawSmtpClient.connect(plain_listener.address[1])
        assert "STARTTLS" not in (await client.hello()).lines
        assert str(await client.command("STARTTLS")) == "454 4.7.0 TLS not available"
    finally:
        await plain_listener.close()


async def test_failed_tls_handshake_closes_the_connection(smtp: SmtpEnv) -> None:
    client = await smtp.session()
    assert (await client.command("STARTTLS")).code == 220
    await client.send(b"this is not a TLS client hello\r\n" * 10)
    assert await client.closed()
    # The listener is unaffected.
    assert (await (await smtp.session()).command("NOOP")).code == 250


async def test_overlong_auth_line_and_bad_utf8_are_refused(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Credentials())
    client = await tls_session(env)
    await client.command("AUTH PLAIN")
    assert str(await client.command("A" * 17000)) == \
        "500 5.5.6 authentication exchange line too long"
    bad = base64.b64encode(b"\0alice\0\xff\xfe").decode()
    assert str(await client.command(f"AUTH PLAIN {bad}")) == \
        "501 5.5.2 Invalid UTF8 in decoded PLAIN response"
    assert (await client.command(f"AUTH PLAIN {plain('', 'alice', 's3cret')}")).code == 235


async def test_auth_failures_are_limited_per_ip_across_connections(
    start_smtp: StartSmtp,
) -> None:
    credentials = Credentials()
    env = await start_smtp(credentials, max_auth_failures_per_peer=4)
    first = await tls_session(env, "127.0.0.5")
    for _ in range(3):
        await first.command(f"AUTH PLAIN {plain('', 'alice', 'guess')}")
    assert await first.closed()
    second = await tls_session(env, "127.0.0.5")
    await second.command("EHLO again.test")
    assert str(await second.command(f"AUTH PLAIN {plain('', 'alice', 'guess')}")) == \
        "535 5.7.8 AUTH invalid"
    # Four failures from this IP: even the right password is refused, unasked.
    calls = len(credentials.calls)
    assert str(await second.command(f"AUTH PLAIN {plain('', 'alice', 's3cret')}")) == \
        "454 4.7.0 too many AUTH failures from 127.0.0.5; try again later"
    assert len(credentials.calls) == calls
    # Another client IP is not affected.
    other = await tls_session(env, "127.0.0.6")
    await other.command("EHLO other.test")
    assert (await other.command(f"AUTH PLAIN {plain('', 'alice', 's3cret')}")).code == 235


async def test_large_message_over_tls_arrives_intact(smtp: SmtpEnv) -> None:
    # The TLS layer reads 64 KiB at a time (kumocore.reception.smtp.protocol._ServerTlsProtocol).
    client = await tls_session(smtp)
    await client.command("EHLO secure.test")
    body = b"Subject: big\r\n\r\n" + b"".join(
        b"%07d" % i + b"x" * 90 + b"\r\n" for i in range(20_000))
    _, final = await client.send_mail("a@example.com", ["b@example.com"], body)
    assert final.code == 250
    assert smtp.messages[0].data.endswith(body)
