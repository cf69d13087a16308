"""Policy failures: events that raise or return wrong types, wrong arguments to ``kumo.*``."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Sequence
from typing import Any

from bench.common.client import TRUSTED, SyncClient, body_for

#: Python appended to the bench policy: every event fails (raises, returns the wrong
#: type, sleeps past ``data_processing_timeout``) when it sees a magic value.
FAILING_EVENTS = """

@hookimpl
def kumo_smtp_server_connection_accepted(conn_meta: Any) -> None:
    if str(conn_meta.get("received_from", "")).startswith("127.0.0.9:"):
        raise RuntimeError("policy bug in connection_accepted")


@hookimpl
def kumo_smtp_server_ehlo(domain: str, conn_meta: Any) -> None:
    if domain == "boom-ehlo.test":
        raise RuntimeError("policy bug in ehlo")


@hookimpl
def kumo_smtp_server_mail_from(sender: Any, conn_meta: Any) -> None:
    if sender.domain == "boom-mail.test":
        raise RuntimeError("policy bug in mail_from")


@hookimpl
def kumo_smtp_server_mail_rcpt_to(recipient: Any, conn_meta: Any) -> None:
    if recipient.user.startswith("boom-rcpt"):
        raise RuntimeError("policy bug in mail_rcpt_to")
    if recipient.user.startswith("boom-reject-type"):
        _kumo.reject("not a code", 42)


@hookimpl
async def kumo_smtp_server_message_received(message: Any, conn_meta: Any) -> None:
    boom = message.get_first_named_header_value("X-Boom")
    if boom == "received":
        raise RuntimeError("policy bug in message_received")
    if boom == "set_meta-type":
        message.set_meta("tenant", object())
    if boom == "header-type":
        message.prepend_header(None, 42)
    if boom == "reject-2xx":
        _kumo.reject(250, "fake accept")
    if boom == "slow":
        await asyncio.sleep(30)


@hookimpl
def kumo_get_listener_domain(domain: str, listener: str, conn_meta: Any) -> Any:
    if domain == "boom-domain.test":
        raise RuntimeError("policy bug in get_listener_domain")
    if domain == "badtype-domain.test":
        return "relay everything"
    return None


@hookimpl(tryfirst=True)
def kumo_get_queue_config(domain: str, tenant: Any, campaign: Any) -> Any:
    if domain == "boom-queue.test":
        raise RuntimeError("policy bug in get_queue_config")
    if domain == "badtype-queue.test":
        return {"retry_interval": "not a duration"}
    return None


@hookimpl(tryfirst=True)
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    if domain == "boom-path.test":
        raise RuntimeError("policy bug in get_egress_path_config")
    if domain == "badtype-path.test":
        return 42
    return None


@hookimpl
def kumo_classify_bounce(response: Any) -> Any:
    if "permfail" in str(response):
        raise RuntimeError("policy bug in classify_bounce")
    return None
"""

BOOM_DOMAINS = {
    "boom-domain.test",
    "badtype-domain.test",
    "boom-queue.test",
    "badtype-queue.test",
    "boom-path.test",
    "badtype-path.test",
}

_session_tags = itertools.count(1)


def policy_failure_session(
    port: int, *, source: str = TRUSTED, ehlo: str = "client.test", sender: str = "a@src.test",
    rcpt: str | None = None, boom: str | None = None,
) -> list[Any]:  # fmt: skip
    """Run a transaction and return every reply (a ``str`` when the connection ended
    without one), stopping at the first refusal."""
    rcpt = rcpt or f"ok.pe{next(_session_tags)}@crash.test"
    replies: list[Any] = []
    try:
        with SyncClient(port, source) as client:
            replies.append(client.read_reply())
            if replies[-1].code != 220:
                return replies
            replies.append(client.command(f"EHLO {ehlo}"))
            if replies[-1].code != 250:
                return replies
            extra = f"X-Boom: {boom}\r\n".encode() if boom else b""
            replies += client.mail(sender, [rcpt], extra + body_for(rcpt))
    except (ConnectionError, OSError) as exc:
        replies.append(f"connection ended: {exc}")
    return replies


POLICY_FAILURES: dict[str, dict[str, Any]] = {
    "connection_accepted": dict(source="127.0.0.9"),
    "ehlo": dict(ehlo="boom-ehlo.test"),
    "mail_from": dict(sender="x@boom-mail.test"),
    "mail_rcpt_to": dict(rcpt="boom-rcpt@crash.test"),
    "kumo.reject with wrong types": dict(rcpt="boom-reject-type@crash.test"),
    "message_received": dict(boom="received"),
    "msg:set_meta with a non-JSON value": dict(boom="set_meta-type"),
    "msg:prepend_header with wrong types": dict(boom="header-type"),
    "data_processing_timeout": dict(boom="slow"),
    "get_listener_domain": dict(source="127.0.0.5", rcpt="x@boom-domain.test"),
    "get_listener_domain returns a string": dict(source="127.0.0.5", rcpt="x@badtype-domain.test"),
    "get_queue_config": dict(rcpt="x@boom-queue.test"),
    "get_queue_config returns a dict": dict(rcpt="x@badtype-queue.test"),
}


def policy_failure_problem(replies: Sequence[Any]) -> str | None:
    """None when the last reply is a clear refusal (4xx/5xx with an enhanced status code)."""
    last = replies[-1] if replies else "nothing"
    if isinstance(last, str):
        return f"no reply: {last}"
    if not 400 <= last.code < 600:
        return f"not refused: {last}"
    if re.match(r"^[45]\.\d+\.\d+ ", last.text) is None:
        return f"no enhanced status code: {last}"
    return None


WRONG_ARGUMENTS: list[tuple[Any, ...]] = [
    (),
    (object(),),
    (123,),
    (None,),
    ([1, 2],),
    ({"bogus": object()},),
    ({"name": 5, "path": [], "kind": {}},),
    ("x" * 300,),
    (b"\x00\xff",),
]
BUILTIN_PLUGINS = frozenset({"kumocore.core", "bounce_classifier", "local_logs",
                             "redis_throttles"})  # fmt: skip
#: Calls among WRONG_ARGUMENTS that are right for that function and just take long.
VALID_SLOW_CALLS = [("sleep", (123,))]


def unclear_error(name: str, exc: BaseException) -> bool:
    """Whether ``exc`` is an unclear answer from ``kumo.<name>`` to a wrong argument.

    Clear: a ConfigError/TypeError/ValueError/LookupError (or a Rejection, PolicyError,
    DnsError) whose text names the function, a key or option, or what was expected.
    """
    from kumocore.dns import DnsError
    from kumocore.errors import PolicyError, Rejection

    if isinstance(exc, DnsError | Rejection | PolicyError):
        return False
    if not isinstance(exc, TypeError | ValueError | LookupError) or isinstance(exc, UnicodeError):
        return True
    text = str(exc)
    words = (
        name.split(".")[-1],
        "kumo.",
        "argument",
        "key",
        "option",
        "expected",
        "invalid",
        "JSON serializable",
    )
    return not any(word in text for word in words)


async def kumo_wrong_types(dns_address: str, select: Any = None) -> tuple[int, list[str]]:
    """Call every built-in ``kumo.*`` function with :data:`WRONG_ARGUMENTS`; returns the
    number of calls and a line per unclear answer."""
    import asyncio
    import inspect
    import io

    from kumocore.node.runtime import Runtime

    runtime = Runtime()
    runtime.resolver.configure([dns_address], timeout=0.5)
    names = sorted(
        name
        for name, (plugin, _) in runtime.hooks.policy_functions().items()
        if plugin in BUILTIN_PLUGINS and (select is None or select(name))
    )
    calls, unclear = 0, []
    for name in names:
        target: Any = runtime.kumo
        for part in name.split("."):
            target = getattr(target, part)
        for args in WRONG_ARGUMENTS:
            if (name, args) in VALID_SLOW_CALLS:
                continue  # kumo.sleep(123) sleeps 123 s, as asked
            calls += 1
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # kumo.log_* print
                    result = target(*args)
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, 5)
            except Exception as exc:
                if unclear_error(name, exc):
                    unclear.append(
                        f"kumo.{name}{str(args)[:40]} -> {type(exc).__name__}: {str(exc)[:80]}"
                    )
    return calls, unclear
