"""Relay abuse: routing tricks aimed at a foreign domain from an untrusted peer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.common.client import UNTRUSTED, ProtocolViolation, SyncClient, body_for
from bench.common.smtp_client import Reply
from bench.common.world import FOREIGN_DOMAIN, RELAY_DOMAIN


@dataclass(frozen=True)
class RelayCase:
    name: str
    recipient: str
    sender: str = "someone@src.test"
    #: True: the listener must accept it (its domain is ``relay_to``).
    accept: bool = False


F, R = FOREIGN_DOMAIN, RELAY_DOMAIN
RELAY_CASES: tuple[RelayCase, ...] = (
    RelayCase("plain foreign recipient", f"victim@{F}"),
    RelayCase("foreign recipient, sender in relay_to domain", f"victim@{F}", f"postmaster@{R}"),
    RelayCase("foreign recipient, null sender", f"victim@{F}", ""),
    RelayCase("uppercase foreign domain", f"victim@{F.upper()}"),
    RelayCase("trailing-dot foreign domain", f"victim@{F}."),
    RelayCase("percent hack via relay_to domain", f"victim%{F}@{R}"),
    RelayCase("percent hack, uppercase", f"victim%{F.upper()}@{R.upper()}"),
    RelayCase("double percent hack", f"victim%{F}%{R}@{R}"),
    RelayCase("source route", f"@{R}:victim@{F}"),
    RelayCase("source route, two hops", f"@{R},@{R}:victim@{F}"),
    RelayCase("quoted local part with @", f'"victim@{F}"@{R}'),
    RelayCase("quoted local part with %", f'"victim%{F}"@{R}'),
    RelayCase("two @ signs", f"victim@{F}@{R}"),
    RelayCase("bang path", f"{F}!victim@{R}"),
    RelayCase("bang path, no domain", f"{F}!victim"),
    RelayCase("IPv4 literal", "victim@[127.0.0.1]"),
    RelayCase("IPv4 literal, foreign", "victim@[192.0.2.1]"),
    RelayCase("IPv6 literal", "victim@[IPv6:::1]"),
    RelayCase("relay_to as subdomain of foreign", f"victim@{R}.{F}"),
    RelayCase("foreign as subdomain of relay_to", f"victim@{F}.{R}"),
    RelayCase("relay_to domain with space", f"victim@{R} "),
    RelayCase("unbracketed foreign", f"victim@{F}"),
    RelayCase("relay_to domain", f"user@{R}", accept=True),
    RelayCase("relay_to domain, uppercase", f"user@{R.upper()}", accept=True),
    RelayCase("relay_to domain, trailing dot", f"user@{R}.", accept=True),
)

#: Cases whose local part carries routing syntax (Postfix ``allow_untrusted_routing=no``
#: refuses them for relay domains: a downstream server may still honour the route).
ROUTING_SYNTAX_CASES = frozenset(
    {
        "percent hack via relay_to domain",
        "percent hack, uppercase",
        "double percent hack",
        "quoted local part with @",
        "quoted local part with %",
        "bang path",
    }
)


@dataclass
class RelayResult:
    case: RelayCase
    rcpt: Reply | None
    final: Reply | None
    error: str = ""

    @property
    def accepted(self) -> bool:
        return self.final is not None and self.final.code == 250

    @property
    def refused_5xx(self) -> bool:
        reply = self.final or self.rcpt
        return reply is not None and 500 <= reply.code < 600 and not self.accepted


def try_relay(port: int, case: RelayCase, *, source: str = UNTRUSTED) -> RelayResult:
    """One case as an untrusted peer; the raw recipient text goes into ``RCPT TO:<...>``."""
    try:
        with SyncClient(port, source) as client:
            client.hello("abuser.test")
            mail = client.command(f"MAIL FROM:<{case.sender}>")
            if mail.code != 250:
                return RelayResult(case, mail, None, "MAIL refused")
            if case.recipient.startswith("@"):
                rcpt_line = f"RCPT TO:<{case.recipient}>"
            elif case.name == "unbracketed foreign":
                rcpt_line = f"RCPT TO:{case.recipient}"
            else:
                rcpt_line = f"RCPT TO:<{case.recipient}>"
            rcpt = client.command(rcpt_line)
            if rcpt.code != 250:
                return RelayResult(case, rcpt, None)
            data = client.command("DATA")
            if data.code != 354:
                return RelayResult(case, rcpt, data)
            client.send(body_for("relay-abuse") + b".\r\n")
            return RelayResult(case, rcpt, client.read_reply())
    except (OSError, ConnectionError, ProtocolViolation) as exc:
        return RelayResult(case, None, None, f"{type(exc).__name__}: {exc}")


def run_relay_battery(port: int, cases: Sequence[RelayCase] = RELAY_CASES) -> list[RelayResult]:
    return [try_relay(port, case) for case in cases]
