"""``kumocore explain``: one message through the policy, as a dry run.

It asks the loaded policy every question the server would ask for one SMTP message —
connection, EHLO, MAIL FROM, RCPT TO and the relay decision, the reception event, the
queue and its configuration, the pool and its weighted sources, the MX and site name,
the egress path configuration per source — and reports each answer and every handler
error. Nothing is listened on, spooled, logged or sent: the only traffic is the DNS the
policy and the MX lookup do.

Each step runs even when an earlier one failed (with what is known), so one run shows
every problem; a step that cannot run says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kumocore.errors import Rejection
from kumocore.mail.address import parse_envelope_address
from kumocore.mail.ids import new_message_id
from kumocore.mail.message import Message
from kumocore.reception.smtp.relay import DomainLookup, check_relaying, has_routing_syntax
from kumocore.reception.trace import received_header, rfc2822_now

if TYPE_CHECKING:
    from kumocore.config import EsmtpListenerConfig
    from kumocore.node.runtime import Runtime


@dataclass
class Step:
    """One question asked of the policy: its answer, or the error it raised."""

    name: str
    answer: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.name, "ok": self.error is None, "answer": self.answer,
                "error": self.error}  # fmt: skip


@dataclass(frozen=True)
class Probe:
    """The message to explain (``kumocore explain`` arguments)."""

    sender: str
    recipient: str
    headers: tuple[tuple[str, str], ...] = ()
    peer: str = "127.0.0.1"
    ehlo: str = "client.example"
    listener: str | None = None
    body: str = "This is a test message from kumocore explain.\r\n"


@dataclass
class Explanation:
    steps: list[Step] = field(default_factory=list)

    @property
    def errors(self) -> list[Step]:
        return [step for step in self.steps if step.error is not None]

    def to_json(self) -> dict[str, Any]:
        return {"ok": not self.errors, "steps": [s.to_json() for s in self.steps]}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Rejection):
        return f"rejected: {exc.code} {exc.message}"
    return str(exc) or type(exc).__name__


class _Run:
    """The state one explanation builds up, step by step."""

    def __init__(self, runtime: Runtime, probe: Probe) -> None:
        self.runtime = runtime
        self.probe = probe
        self.result = Explanation()
        self.listener = _pick_listener(runtime, probe.listener)
        self.conn_meta: dict[str, Any] = {
            "reception_protocol": "ESMTP",
            "received_via": self.listener.listen if self.listener else "",
            "received_from": f"{probe.peer}:0",
            "hostname": self.listener.hostname if self.listener else runtime.hostname,
        }

    async def step(self, name: str, fn: Any, *args: Any) -> Any:
        step = Step(name)
        self.result.steps.append(step)
        try:
            return await fn(step, *args)
        except Exception as exc:  # every handler error is part of the report
            step.error = _describe(exc)
            return None


def _pick_listener(runtime: Runtime, name: str | None) -> EsmtpListenerConfig | None:
    listeners = runtime.config.esmtp_listeners
    if name is None:
        return listeners[0] if listeners else None
    for listener in listeners:
        if name in (listener.listen, getattr(listener, "name", None)):
            return listener
    known = ", ".join(listener.listen for listener in listeners) or "none"
    raise ValueError(f"no ESMTP listener {name!r}; the policy defines: {known}")


async def explain(runtime: Runtime, probe: Probe) -> Explanation:
    """Ask ``runtime``'s (loaded) policy about ``probe``; see the module docstring."""
    run = _Run(runtime, probe)
    hooks = runtime.hooks
    sender = parse_envelope_address(probe.sender)
    recipient = parse_envelope_address(probe.recipient, allow_null=False)
    meta = run.conn_meta

    async def connection(step: Step) -> None:
        step.answer = {"listener": run.listener.listen if run.listener else None,
                       "peer": probe.peer}  # fmt: skip
        await hooks.smtp_server_connection_accepted(meta)

    async def ehlo(step: Step) -> None:
        meta["ehlo_domain"] = probe.ehlo
        await hooks.smtp_server_ehlo(probe.ehlo, meta)
        step.answer = {"ehlo": probe.ehlo}

    async def mail_from(step: Step) -> None:
        await hooks.smtp_server_mail_from(sender, meta)
        step.answer = {"sender": sender.email}

    async def rcpt_to(step: Step) -> bool:
        relay = await _relay(run, sender, recipient)
        step.answer = relay
        await hooks.smtp_server_mail_rcpt_to(recipient, meta)
        return bool(relay["accepted"])

    await run.step("smtp_server_connection_accepted", connection)
    await run.step("smtp_server_ehlo", ehlo)
    await run.step("smtp_server_mail_from", mail_from)
    await run.step("smtp_server_mail_rcpt_to (relay decision)", rcpt_to)
    message = _message(run, sender, recipient)
    await run.step("smtp_server_message_received", _received, run, message)
    config = await run.step("get_queue_config", _queue_config, run, message)
    if config is not None:
        await _routing(run, message, config)
    return run.result


async def _relay(run: _Run, sender: Any, recipient: Any) -> dict[str, Any]:
    if run.listener is None:
        return {"accepted": False, "reason": "the policy defines no ESMTP listener"}
    lookup = DomainLookup(run.runtime.hooks, run.listener, run.listener.listen, run.conn_meta)
    disposition = await check_relaying(lookup, peer_ip=run.probe.peer, sender=sender,
                                       recipient=recipient)
    routed = not disposition.trusted and has_routing_syntax(recipient.user)
    accepted = disposition.accept_rcpt_to and not routed
    return {
        "accepted": accepted,
        "relay": disposition.relay,
        "trusted_peer": disposition.trusted,
        "log_oob": disposition.log_oob,
        "log_arf": disposition.log_arf,
        "reply": "250 2.1.5 OK" if accepted else "550 5.7.1 relaying not permitted",
    }


def _message(run: _Run, sender: Any, recipient: Any) -> Message:
    headers = "".join(f"{name}: {value}\r\n" for name, value in run.probe.headers)
    if not any(name.lower() == "from" for name, _ in run.probe.headers):
        headers = f"From: <{sender.email}>\r\n" + headers
    if not any(name.lower() == "subject" for name, _ in run.probe.headers):
        headers += "Subject: kumocore explain\r\n"
    message_id = new_message_id()
    body = (headers + "\r\n" + run.probe.body).encode()
    listener = run.listener
    if listener is None or listener.trace_headers.received_header:
        body = received_header(
            ehlo_domain=run.probe.ehlo, peer_ip=run.probe.peer,
            hostname=str(run.conn_meta["hostname"]), local_ip="127.0.0.1", protocol="ESMTP",
            message_id=message_id, recipient=recipient.email, date=rfc2822_now()) + body
    return Message(sender, recipient, body, id=message_id, meta=run.conn_meta)


async def _received(step: Step, run: _Run, message: Message) -> None:
    before = {name.lower() for name, _ in message.get_all_headers()}
    await run.runtime.hooks.smtp_server_message_received(message, run.conn_meta)
    added = [(name, value) for name, value in message.get_all_headers()
             if name.lower() not in before]  # fmt: skip
    step.answer = {
        "meta": {k: v for k, v in message.meta.items() if k not in run.conn_meta or
                 run.conn_meta.get(k) != v},
        "headers_added": [{"name": n, "value": v} for n, v in added],
        "dkim_signed": any(n.lower() == "dkim-signature" for n, _ in added),
    }  # fmt: skip


async def _queue_config(step: Step, run: _Run, message: Message) -> Any:
    from kumocore.mail.queue_name import message_queue

    name, parts = message_queue(message)
    step.answer = {"queue": name}
    if name == "null":
        step.answer["note"] = "the null queue: accepted and discarded"
        return None
    config = await run.runtime.hooks.get_queue_config(
        parts.domain, parts.tenant, parts.campaign, parts.routing_domain)
    if config is not None:
        step.answer.update(_settings(config))
        step.answer["egress_pool"] = config.egress_pool or "unspecified"
    return config


def _settings(config: Any) -> dict[str, Any]:
    """``config`` in full, and the values that differ from the defaults (what people read)."""
    full = config.to_dict()
    try:
        defaults = type(config).from_options({}).to_dict()
    except Exception:  # a config type with required fields: everything is a setting
        defaults = {}
    changed = {k: v for k, v in full.items() if k not in defaults or defaults[k] != v}
    return {"config": full, "settings": changed}


async def _routing(run: _Run, message: Message, config: Any) -> None:
    hooks = run.runtime.hooks
    pool_name = config.egress_pool or "unspecified"

    async def pool(step: Step) -> list[tuple[str, int]]:
        found = await hooks.get_egress_pool(pool_name)
        if found is None:
            raise LookupError(f"egress pool {pool_name!r} is not defined")
        entries = [(entry.name, int(entry.weight)) for entry in found.entries]
        step.answer = {"pool": pool_name,
                       "sources": [{"name": n, "weight": w} for n, w in entries]}  # fmt: skip
        return entries

    async def mx(step: Step) -> Any:
        domain = message.meta.get("routing_domain") or message.recipient.domain
        started = time.perf_counter()
        found = await run.runtime.resolver.lookup_mx(domain)
        step.answer = {"domain": domain, "hosts": list(found.hosts),
                       "site_name": found.site_name,
                       "ms": round((time.perf_counter() - started) * 1000, 1)}  # fmt: skip
        return found

    entries = await run.step("get_egress_pool", pool) or []
    exchanger = await run.step("MX lookup and site name", mx)
    for source_name, _weight in entries:
        await run.step(f"get_egress_source {source_name}", _source, run, source_name)
        if exchanger is not None:
            await run.step(f"get_egress_path_config {source_name} -> {exchanger.site_name}",
                           _path, run, message, source_name, exchanger.site_name)  # fmt: skip


async def _source(step: Step, run: _Run, name: str) -> None:
    source = await run.runtime.hooks.get_egress_source(name)
    if source is None:
        raise LookupError(f"egress source {name!r} is not defined")
    step.answer = {k: v for k, v in source.to_dict().items() if v is not None}


async def _path(step: Step, run: _Run, message: Message, source: str, site: str) -> None:
    domain = message.meta.get("routing_domain") or message.recipient.domain
    config = await run.runtime.hooks.get_egress_path_config(domain, source, site)
    if config is None:
        raise LookupError("no egress path configuration")
    step.answer = _settings(config)
