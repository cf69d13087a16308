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

Not filled (kumocore does not derive them): ``constraints`` (KumoMTA's
``EffectiveConstraints``, the throughput ceilings implied by the configuration) is absent.
Query parameters other than ``domain`` and ``source`` are refused with 400, as is a
missing ``domain``; a policy error in either event is 500 with the error text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.admin.api_support import ADMIN_PREFIX

if TYPE_CHECKING:
    from kumocore.dns.mx import MailExchanger
    from kumocore.node.runtime import Runtime
    from kumocore.queue.manager import QueueManager

__all__ = ["RESOLVE_PATH", "add_resolve_route", "mx_resolution", "resolve_egress_path"]

RESOLVE_PATH = f"{ADMIN_PREFIX}/resolve-egress-path/v1"
DEFAULT_SOURCE = "unspecified"
_PARAMETERS = ("domain", "source")


class ResolveError(Exception):
    """The request cannot be answered: ``status`` and the error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
    from kumocore.config.protocols import SmtpProtocol
    from kumocore.dns import DnsError

    if isinstance(protocol, SmtpProtocol) and protocol.mx_list:
        return protocol.mx_list_site_name, None
    if not isinstance(protocol, SmtpProtocol):
        return domain, None
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
    }


def _query(request: web.Request) -> tuple[str, str]:
    unknown = sorted(set(request.query) - set(_PARAMETERS))
    if unknown:
        raise ResolveError(400, f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                           "this request takes domain and source")  # fmt: skip
    domain = request.query.get("domain", "").strip()
    if not domain:
        raise ResolveError(400, "query parameter 'domain' is required")
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
