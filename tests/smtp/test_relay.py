"""The relay decision (KumoMTA's check_relaying) from three client addresses:
127.0.0.1 (in relay_hosts), 127.0.0.5 (untrusted) and 127.0.10.7 (inside a relay_from range).
"""

from __future__ import annotations

from typing import Any

from kumocore import hookimpl
from kumocore.config import ListenerDomain
from tests.smtp.conftest import SmtpEnv, StartSmtp

TRUSTED, UNTRUSTED, RELAY_FROM_PEER = "127.0.0.1", "127.0.0.5", "127.0.10.7"

DOMAINS = {
    "inbound.example": {"relay_to": True},
    "sender.example": {"relay_from": ["127.0.10.0/24"]},
    "bounces.example": {"log_oob": "LogThenDrop"},
    "fbl.example": {"log_arf": True},
}


async def rcpt_reply(env: SmtpEnv, source: str, sender: str, recipient: str) -> str:
    client = await env.session(source)
    assert (await client.command(f"MAIL FROM:<{sender}>")).code == 250
    reply = await client.command(f"RCPT TO:<{recipient}>")
    await client.close()
    return str(reply)


async def test_relay_host_may_send_anywhere(start_smtp: StartSmtp) -> None:
    env = await start_smtp(domains=DOMAINS)
    assert await rcpt_reply(env, TRUSTED, "a@anywhere.example", "b@other.example") == \
        "250 2.1.5 OK"


async def test_untrusted_peer_is_refused_with_its_address(start_smtp: StartSmtp) -> None:
    env = await start_smtp(domains=DOMAINS)
    client = await env.session(UNTRUSTED)
    await client.command("MAIL FROM:<a@anywhere.example>")
    reply = await client.command("RCPT TO:<b@other.example>")
    local = client.writer.get_extra_info("sockname")
    assert str(reply) == f"550 5.7.1 relaying not permitted for {UNTRUSTED}:{local[1]}"


async def test_relay_to_domain_accepts_mail_from_anyone(start_smtp: StartSmtp) -> None:
    env = await start_smtp(domains=DOMAINS)
    for source in (UNTRUSTED, RELAY_FROM_PEER):
        assert await rcpt_reply(env, source, "a@anywhere.example", "x@inbound.example") == \
            "250 2.1.5 OK"


async def test_relay_from_allows_peers_in_range_for_that_sender_domain(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(domains=DOMAINS)
    assert await rcpt_reply(env, RELAY_FROM_PEER, "a@sender.example", "b@other.example") == \
        "250 2.1.5 OK"
    refused = await rcpt_reply(env, UNTRUSTED, "a@sender.example", "b@other.example")
    assert refused.startswith("550 5.7.1 relaying not permitted for 127.0.0.5:")
    other_sender = await rcpt_reply(env, RELAY_FROM_PEER, "a@else.example", "b@other.example")
    assert other_sender.startswith("550 5.7.1 relaying not permitted for 127.0.10.7:")


async def test_domain_names_match_case_insensitively(start_smtp: StartSmtp) -> None:
    env = await start_smtp(domains=DOMAINS)
    assert await rcpt_reply(env, UNTRUSTED, "a@x.example", "x@INBOUND.Example") == "250 2.1.5 OK"


async def test_report_domains_accept_rcpt_but_refuse_non_reports_at_end_of_data(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(domains=DOMAINS)
    for recipient in ("bounce@bounces.example", "fbl@fbl.example"):
        client = await env.session(UNTRUSTED)
        rcpts, final = await client.send_mail(
            "a@remote.example", [recipient], "Subject: not a report\r\n\r\nhello\r\n")
        assert [str(r) for r in rcpts] == ["250 2.1.5 OK"]
        assert str(final) == "550 5.7.1 relaying not permitted"
    assert env.messages == []


async def test_relay_hosts_can_be_replaced(start_smtp: StartSmtp) -> None:
    env = await start_smtp(relay_hosts=["127.0.0.5"])
    assert await rcpt_reply(env, UNTRUSTED, "a@x.example", "b@y.example") == "250 2.1.5 OK"
    assert (await rcpt_reply(env, TRUSTED, "a@x.example", "b@y.example")).startswith("550 ")


async def test_peer_block_overrides_relay_hosts_for_that_client(start_smtp: StartSmtp) -> None:
    env = await start_smtp(peer={"127.0.0.0/24": {"relay_hosts": ["127.0.0.0/24"]}})
    assert await rcpt_reply(env, UNTRUSTED, "a@x.example", "b@y.example") == "250 2.1.5 OK"
    assert (await rcpt_reply(env, RELAY_FROM_PEER, "a@x.example", "b@y.example")).startswith(
        "550 ")


async def test_only_accepted_recipients_get_a_message(start_smtp: StartSmtp) -> None:
    env = await start_smtp(domains=DOMAINS)
    client = await env.session(UNTRUSTED)
    rcpts, final = await client.send_mail(
        "a@x.example", ["one@inbound.example", "two@other.example", "three@inbound.example"],
        "Subject: mixed\r\n\r\nhi\r\n")
    assert [r.code for r in rcpts] == [250, 550, 250]
    assert final.code == 250
    assert sorted(m.recipient.email for m in env.messages) == [
        "one@inbound.example", "three@inbound.example"]


class ListenerDomains:
    """A get_listener_domain policy that records its calls."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    @hookimpl
    def kumo_get_listener_domain(
        self, domain: str, listener: str, conn_meta: dict[str, Any]
    ) -> ListenerDomain | None:
        self.calls.append((domain, listener, dict(conn_meta)))
        options = self.answers.get(domain)
        return None if options is None else ListenerDomain.from_options(options)


async def test_get_listener_domain_hook_is_consulted_before_the_table(
    start_smtp: StartSmtp,
) -> None:
    policy = ListenerDomains({"hooked.example": {"relay_to": True},
                              "inbound.example": {"relay_to": False}})
    env = await start_smtp(policy, domains=DOMAINS)
    assert await rcpt_reply(env, UNTRUSTED, "a@x.example", "b@hooked.example") == \
        "250 2.1.5 OK"
    # The hook's answer for inbound.example wins over the table's relay_to = true.
    assert (await rcpt_reply(env, UNTRUSTED, "a@x.example", "b@inbound.example")).startswith(
        "550 5.7.1")
    # Domains the hook does not know fall back to the listener's table.
    assert await rcpt_reply(env, RELAY_FROM_PEER, "a@sender.example", "b@y.example") == \
        "250 2.1.5 OK"


async def test_get_listener_domain_hook_gets_listener_address_and_conn_meta(
    start_smtp: StartSmtp,
) -> None:
    policy = ListenerDomains({"sender.example": {"relay_from": ["127.0.10.0/24"]}})
    env = await start_smtp(policy)
    assert await rcpt_reply(env, RELAY_FROM_PEER, "a@sender.example", "b@y.example") == \
        "250 2.1.5 OK"
    domain, listener, conn_meta = policy.calls[0]
    assert domain == "sender.example"
    assert listener == f"127.0.0.1:{env.port}"
    assert conn_meta["received_from"].startswith("127.0.10.7:")
    assert conn_meta["ehlo_domain"] == "client.test"


ROUTING_TRICKS = ["victim%other.example@inbound.example", "other.example!victim@inbound.example",
                  '"victim@other.example"@inbound.example']


async def test_untrusted_peer_may_not_use_routing_syntax_via_a_relay_to_domain(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(domains=DOMAINS)
    for recipient in ROUTING_TRICKS:
        reply = await rcpt_reply(env, UNTRUSTED, "a@x.example", recipient)
        assert reply.startswith("550 5.7.1 relaying not permitted for 127.0.0.5:"), recipient
    # A client that may relay anyway is not second-guessed: kumocore never routes on it.
    for recipient in ROUTING_TRICKS:
        assert await rcpt_reply(env, TRUSTED, "a@x.example", recipient) == "250 2.1.5 OK"
