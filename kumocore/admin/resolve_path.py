"""``GET /api/admin/resolve-egress-path/v1?domain=...&source=...``: which ready queue and
egress path configuration a destination would get, read-only (KumoMTA's shape).

It asks the policy what routing asks for a message to ``domain`` — ``get_queue_config``
(with no tenant, campaign or routing domain, as KumoMTA does), the MX lookup (with the
MTA-STS policy applied, as routing applies it), ``get_egress_path_config`` for ``source``
(default ``unspecified``) and the site — and answers with ``domain``, ``source``, ``mx``,
``queue_name``, ``queue_config`` and ``path_config``. It is the server-side counterpart of
the ``get_queue_config`` and ``get_egress_path_config`` steps of ``kumocore explain``,
and like it, it opens no queue, connection or path.

The site follows the queue's protocol as routing does: the MX site for SMTP, the
``mx_list`` site for an explicit ``mx_list``, the domain itself for other protocols. When
the MX lookup fails the site falls back to the domain and ``mx`` is ``null`` (KumoMTA's
fallback); a null MX answers ``mx`` with an empty ``site_name`` and the domain as site.

``constraints`` is KumoMTA's ``EffectiveConstraints`` of the path configuration with
the scheduled queue's ``max_message_rate`` folded in (:mod:`kumocore.config.constraints`).

Query parameters other than ``domain`` and ``source`` are refused with 400, as are a
missing ``domain`` and one that is no mail destination (:func:`domain_problem`: not a
domain name, a domain literal or ``name:port``); a policy error in either event is 500
with the error text.
"""

from __future__ import annotations

import encodings.idna
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.admin.api_support import ADMIN_PREFIX
from kumocore.config.constraints import fold_queue_rate, path_constraints
from kumocore.dns.mx import domain_literal_address
from kumocore.dns.site_name import split_port

if TYPE_CHECKING:
    from kumocore.dns.mx import MailExchanger
    from kumocore.node.runtime import Runtime
    from kumocore.queue.manager import QueueManager

__all__ = [
    "RESOLVE_PATH",
    "add_resolve_route",
    "domain_problem",
    "mx_resolution",
    "resolve_egress_path",
]

RESOLVE_PATH = f"{ADMIN_PREFIX}/resolve-egress-path/v1"
DEFAULT_SOURCE = "unspecified"
_PARAMETERS = ("domain", "source")
#: A DNS name holds at most 253 octets in text form (without the root's dot), a label 63.
MAX_NAME_OCTETS = 253
MAX_LABEL_OCTETS = 63
_LDH = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", re.IGNORECASE)


class ResolveError(Exception):
    """The request cannot be answered: ``status`` and the error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _label_problem(label: str) -> tuple[str, str | None]:
    """The IDNA (ASCII) form of one label and why it is no DNS label (None when it is)."""
    if not label:
        return label, "empty label"
    try:
        ascii_label = encodings.idna.ToASCII(label).decode("ascii")
        if ascii_label[:4].lower() == "xn--":
            encodings.idna.ToUnicode(ascii_label)  # an A-label must decode
    except UnicodeError as exc:
        return label, f"label {label!r} is not valid IDNA ({exc})"
    if len(ascii_label) > MAX_LABEL_OCTETS:
        return ascii_label, f"label {label!r} is longer than {MAX_LABEL_OCTETS} octets"
    if not _LDH.fullmatch(ascii_label):
        return ascii_label, f"label {label!r} is not letters, digits and inner hyphens"
    return ascii_label, None


def _name_problem(name: str) -> str | None:
    """Why ``name`` is no domain name (None when it is one): labels of 1 to 63 letters,
    digits and inner hyphens once IDNA-encoded, 253 octets at most in all."""
    octets = -1  # the first label has no dot before it
    for label in name.removesuffix(".").split("."):
        ascii_label, problem = _label_problem(label)
        if problem is not None:
            return problem
        octets += len(ascii_label) + 1
    if octets > MAX_NAME_OCTETS:
        return f"longer than {MAX_NAME_OCTETS} octets ({octets})"
    return None


def domain_problem(domain: str) -> str | None:
    """Why ``domain`` is no destination routing could resolve (None when it is one): a
    domain name, optionally with ``:port``, or a domain literal (``[192.0.2.1]``)."""
    try:
        if domain_literal_address(domain) is not None:
            return None
    except ValueError as exc:
        return str(exc)
    host, _ = split_port(domain)
    return _name_problem(host)


def mx_resolution(mx: MailExchanger) -> dict[str, Any]:
    """KumoMTA's ``MxResolution`` of a resolved MX set."""
    return {
        "site_name": mx.site_name,
        "by_preference": {str(pref): list(hosts) for pref, hosts in sorted(mx.by_pref.items())},
        "is_domain_literal": mx.is_domain_literal,
        "is_secure": mx.is_secure,
        "is_mx": mx.is_mx,
    }


async def _site(manager: QueueManager, domain: str, protocol: Any) -> tuple[str, Any]:
    """The site name routing would use, and the MX set it came from (None if none)."""
    from kumocore.config.protocols import site_without_mx
    from kumocore.dns import DnsError

    site = site_without_mx(protocol, domain)
    if site is not None:
        return site, None
    try:
        mx = await manager.resolver.lookup_mx(domain)
        mx = await manager.mta_sts.apply(domain, mx)
    except DnsError:
        return domain, None  # KumoMTA's fallback: the domain stands for the site
    return (mx.site_name or domain), mx


async def resolve_egress_path(manager: QueueManager, domain: str, source: str) -> dict[str, Any]:
    """The answer for ``domain`` over ``source`` (see the module docstring)."""
    from kumocore.config.protocols import SMTP_DEFAULT

    hooks = manager.hooks
    try:
        queue_config = await hooks.get_queue_config(domain, None, None, None)
    except Exception as exc:
        raise ResolveError(500, f"get_queue_config failed: {exc}") from exc
    if queue_config is None:
        raise ResolveError(500, f"get_queue_config returned no configuration for {domain!r}")
    protocol = queue_config.protocol or SMTP_DEFAULT
    site, mx = await _site(manager, domain, protocol)
    try:
        path_config = await hooks.get_egress_path_config(domain, source, site)
    except Exception as exc:
        raise ResolveError(500, f"get_egress_path_config failed: {exc}") from exc
    if path_config is None:
        raise ResolveError(500, f"no egress path configuration for {source}->{site}")
    return {
        "domain": domain,
        "source": source,
        "mx": mx_resolution(mx) if mx is not None else None,
        "queue_name": f"{source}->{site}@{protocol.suffix}",
        "queue_config": queue_config.to_dict(),
        "path_config": path_config.to_dict(),
        "constraints": fold_queue_rate(path_constraints(path_config), queue_config),
    }


def _query(request: web.Request) -> tuple[str, str]:
    unknown = sorted(set(request.query) - set(_PARAMETERS))
    if unknown:
        raise ResolveError(400, f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                           "this request takes domain and source")  # fmt: skip
    domain = request.query.get("domain", "").strip()
    if not domain:
        raise ResolveError(400, "query parameter 'domain' is required")
    problem = domain_problem(domain)
    if problem is not None:
        raise ResolveError(400, f"query parameter 'domain' {domain!r} is not a valid "
                                f"domain: {problem}")  # fmt: skip
    return domain, request.query.get("source") or DEFAULT_SOURCE


class ResolveApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        try:
            domain, source = _query(request)
            services = self.runtime.services
            if services is None:
                raise ResolveError(503, "the queues are not started")
            answer = await resolve_egress_path(services.queues, domain, source)
        except ResolveError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response(answer)


def add_resolve_route(app: web.Application, runtime: Runtime) -> None:
    """Add the endpoint to ``app`` (called by :func:`add_admin_routes`)."""
    app.router.add_get(RESOLVE_PATH, ResolveApi(runtime).resolve)
