"""``kumocore validate`` beyond ``init``: ask every handler what the server will ask it.

``init`` alone does not run the code inside ``get_queue_config`` or
``get_egress_path_config``, so a misspelt option there (``max_agee``, ``connection_limt``)
or a bad duration would only show up when mail arrives — as a ``421`` for every message,
or as a ``250`` followed by failed deliveries. Like ``postconf`` and ``kumod --validate``,
validation therefore calls each lookup handler with the names the policy itself defines
(sources, pools, listener domains) and sample domains, runs the reception events on a
sample message, and checks that the directories it would create can be created.

What it finds is either

* an **error**: a configuration that is wrong whatever the message — an unknown or
  invalid option passed to ``kumo.make_*``, a pool or source that a queue names but
  nothing defines, a spool or log directory that cannot be created; or
* a **warning**: a handler that failed for one sample input only (the seed policy, for
  one, refuses mail without a known tenant) — worth knowing, but a policy may mean it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumocore.errors import ConfigError, Rejection, WrongAnswerError
from kumocore.mail.message import Message

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

#: Domains asked about when the policy and the command line name none.
SAMPLE_DOMAINS = ("example.com",)


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    where: str  # the question asked, e.g. "get_queue_config(domain='example.com', ...)"
    problem: str  # the handler's error, with the policy file and line

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.problem}"


def _is_config_error(exc: BaseException) -> bool:
    """A ``kumo.make_*`` refusal or an answer of the wrong type (each fails every message,
    not just the sample), however deep in the policy error it is wrapped."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConfigError | WrongAnswerError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class PolicyCheck:
    """Collects :class:`Finding` s while asking the loaded policy sample questions."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.hooks = runtime.hooks
        self.findings: list[Finding] = []

    async def ask(self, where: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await fn()
        except Rejection:
            return None  # the policy may refuse a sample; that is not a fault
        except Exception as exc:
            severity = "error" if _is_config_error(exc) else "warning"
            self.findings.append(Finding(severity, where, str(exc)))
            return None

    def error(self, where: str, problem: str) -> None:
        self.findings.append(Finding("error", where, problem))


async def check_policy(
    runtime: Runtime, *, domains: Iterable[str] = (), tenants: Iterable[str] = ()
) -> list[Finding]:
    """Every finding for ``runtime``'s loaded (and initialised) policy."""
    check = PolicyCheck(runtime)
    sample_domains = _sample_domains(runtime, domains)
    sample_tenants: list[str | None] = [None, *tenants]
    pools: set[str] = set(runtime.config.egress_pools)
    for domain in sample_domains:
        await check.ask(f"get_listener_domain({domain!r})",
                        partial(check.hooks.get_listener_domain, domain, "", {}))  # fmt: skip
        for tenant in sample_tenants:
            where = f"get_queue_config(domain={domain!r}, tenant={tenant!r})"
            config = await check.ask(
                where, partial(check.hooks.get_queue_config, domain, tenant, None, None))
            if config is not None:
                pools.add(config.egress_pool or "unspecified")
    sources = await _check_pools(check, pools)
    sources |= set(runtime.config.egress_sources)
    for source in sorted(sources):
        for domain in sample_domains:
            where = f"get_egress_path_config(domain={domain!r}, source={source!r})"
            await check.ask(
                where, partial(check.hooks.get_egress_path_config, domain, source, domain,
                               read_secrets=False))
    await _check_events(check, sample_domains[0])
    _check_directories(check, runtime)
    return check.findings


def _sample_domains(runtime: Runtime, extra: Iterable[str]) -> list[str]:
    domains = list(extra)
    for listener in runtime.config.esmtp_listeners:
        domains += [d for d in listener.domains if not d.startswith("*")]
    return list(dict.fromkeys(domains or SAMPLE_DOMAINS))


async def _check_pools(check: PolicyCheck, pools: Iterable[str]) -> set[str]:
    """Each pool must be defined and name only sources that are; returns the sources."""
    sources: set[str] = set()
    for name in sorted(pools):
        pool = await check.ask(f"get_egress_pool({name!r})",
                               partial(check.hooks.get_egress_pool, name))  # fmt: skip
        if pool is None:
            if not any(f.where == f"get_egress_pool({name!r})" for f in check.findings):
                check.error(f"get_egress_pool({name!r})", "the pool is not defined "
                            "(define_egress_pool or a get_egress_pool handler)")  # fmt: skip
            continue
        for entry in pool.entries:
            where = f"get_egress_source({entry.name!r})"
            found = await check.ask(where, partial(check.hooks.get_egress_source, entry.name,
                                                   read_secrets=False))
            # The handler's own failure (already a finding) says more than "not defined".
            if found is None and not any(f.where == where for f in check.findings):
                check.error(f"egress pool {name!r}",
                            f"names source {entry.name!r}, which is not defined")  # fmt: skip
            sources.add(entry.name)
    return sources


async def _check_events(check: PolicyCheck, domain: str) -> None:
    """The reception events on a sample message: they must not fail on well-formed mail."""
    body = (f"From: <sender@{domain}>\r\nTo: <recipient@{domain}>\r\n"
            "Subject: kumocore validate\r\n\r\nsample\r\n").encode()  # fmt: skip
    # What a listener puts in every connection's metadata (KumoMTA's listeners too):
    # handlers such as msg:add_authentication_results(msg:get_meta 'hostname', ...) need it.
    meta = {"reception_protocol": "ESMTP", "received_from": "127.0.0.1:0",
            "received_via": "127.0.0.1:25", "hostname": socket.gethostname()}  # fmt: skip
    sample = Message(f"sender@{domain}", f"recipient@{domain}", body, meta=dict(meta))
    await check.ask("smtp_server_message_received(sample message)",
                    lambda: check.hooks.smtp_server_message_received(sample, meta))  # fmt: skip
    generated = Message(f"sender@{domain}", f"recipient@{domain}", body)
    await check.ask("http_message_generated(sample message)",
                    lambda: check.hooks.http_message_generated(generated, {}))  # fmt: skip


def _check_directories(check: PolicyCheck, runtime: Runtime) -> None:
    for spool in runtime.config.spools.values():
        problem = _uncreatable(Path(spool.path))
        if problem:
            check.error(f"spool {spool.name!r} at {spool.path}", problem)


def _uncreatable(path: Path) -> str | None:
    """Why ``path`` could not be created (or used) as a directory, or None."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return "no existing parent directory"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} exists and is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None
