"""KumoMTA's "Example Server Policy", rendered as a kumocore Python policy.

Run it with ``kumocore serve --policy docs/examples/example_policy.py``. Paths and
addresses come from the environment so the same file works in a checkout:

``KUMOCORE_VAR`` (spool and logs, default /var/tmp/kumo), ``KUMOCORE_DNS`` (a name server
such as ``127.0.0.1:5353``), ``KUMOCORE_DKIM_DIR`` (``<dir>/<domain>/<selector>.key``).

Differences from the Lua original, on purpose: MX site names are resolved lazily on the
first egress-path lookup (a Python module cannot await DNS at import time), and the
per-source table is keyed by real tuples, so — unlike the Lua table-literal keys — it
actually matches.
"""

from __future__ import annotations

import os
from typing import Any

from kumocore import hookimpl

VAR = os.environ.get("KUMOCORE_VAR", "/var/tmp/kumo")
DKIM_DIR = os.environ.get("KUMOCORE_DKIM_DIR", "/opt/kumomta/etc/dkim")
SOURCE_NET = os.environ.get("KUMOCORE_SOURCE_NET", "10.0.0")

_kumo: Any = None

TENANT_PARAMS: dict[str, dict[str, Any]] = {"TenantOne": {"max_age": "5 minutes"}}
DKIM_CONFIG = {"examplecorp.com": "dkim1024", "kumocorp.com": "s1024"}
SHAPE_BY_DOMAIN: dict[str, dict[str, Any]] = {
    "comcast.net": {
        "connection_limit": 2,
        "max_deliveries_per_connection": 100,
        "max_message_rate": "1/second",
    },
}
SHAPE_BY_SITE_OF = {
    "gmail.com": {"connection_limit": 3, "max_deliveries_per_connection": 50},
    "outlook.com": {"connection_limit": 10},
    "yahoo.com": {"connection_limit": 10, "max_deliveries_per_connection": 20},
}
SHAPE_BY_SOURCE: dict[tuple[str, str], dict[str, Any]] = {
    ("comcast.net", "ip-2"): {"max_message_rate": "10/second"},
}
_site_shapes: dict[str, dict[str, Any]] | None = None


def _bounce_rules() -> str:
    from kumocore_bounce_classifier import default_rules_path

    return str(default_rules_path())


@hookimpl
def kumo_init(kumo: Any) -> None:
    global _kumo
    _kumo = kumo
    if name_server := os.environ.get("KUMOCORE_DNS"):
        kumo.dns.configure_resolver(name_servers=[name_server])
    kumo.define_spool(name="data", path=f"{VAR}/spool/data", kind="RocksDB")
    kumo.define_spool(name="meta", path=f"{VAR}/spool/meta", kind="RocksDB")
    kumo.configure_local_logs(log_dir=f"{VAR}/logs")
    kumo.configure_bounce_classifier(files=[_bounce_rules()])
    kumo.start_http_listener(listen="127.0.0.1:8000", trusted_hosts=["127.0.0.1", "::1"])
    kumo.start_http_listener(
        use_tls=True, listen="127.0.0.1:8001", trusted_hosts=["127.0.0.1", "::1"]
    )
    kumo.start_esmtp_listener(
        listen="127.0.0.1:2025",
        relay_hosts=["127.0.0.1", "192.168.1.0/24"],
        domains={
            "examplecorp.com": {"relay_to": True},
            "send.examplecorp.com": {"relay_from": [f"{SOURCE_NET}.0/24"]},
            "bounce.examplecorp.com": {"log_oob": True},
            "fbl.examplecorp.com": {"log_arf": True},
        },
    )
    for number, ehlo in enumerate(["mta1", "mta3", "mta1", "mta4", "mta5"], start=1):
        kumo.define_egress_source(
            name=f"ip-{number}",
            source_address=f"{SOURCE_NET}.{number}",
            ehlo_domain=f"{ehlo}.examplecorp.com",
        )
    kumo.define_egress_pool(
        name="TenantOne", entries=[{"name": "ip-3"}, {"name": "ip-4"}, {"name": "ip-5"}]
    )
    kumo.define_egress_pool(
        name="TenantTwo", entries=[{"name": "ip-1"}, {"name": "ip-2"}, {"name": "ip-3"}]
    )


async def _shapes_by_site() -> dict[str, dict[str, Any]]:
    """Site name → shaping, resolved once (the Lua original's MX_ROLLUP table)."""
    global _site_shapes
    if _site_shapes is None:
        shapes = {}
        for domain, shape in SHAPE_BY_SITE_OF.items():
            mx = await _kumo.dns.lookup_mx(domain)
            shapes[mx["site_name"]] = shape
        _site_shapes = shapes
    return _site_shapes


@hookimpl
async def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    by_site = await _shapes_by_site()
    params: dict[str, Any] = {}
    params.update(by_site.get(site_name) or SHAPE_BY_DOMAIN.get(domain) or {})
    params.update(
        SHAPE_BY_SOURCE.get((site_name, egress_source))
        or SHAPE_BY_SOURCE.get((domain, egress_source))
        or {}
    )
    return _kumo.make_egress_path(params)


@hookimpl
def kumo_get_queue_config(domain: str, tenant: str | None, campaign: str | None) -> Any:
    if tenant not in TENANT_PARAMS:
        # The Lua original fails here too (merge_into(nil, ...)): refuse at reception.
        raise LookupError(f"unknown tenant {tenant!r}")
    return _kumo.make_queue_config(egress_pool=tenant, **TENANT_PARAMS[tenant])


def _dkim_sign(msg: Any) -> None:
    sender = msg.from_header()
    selector = DKIM_CONFIG.get(sender.domain) if sender else None
    if not selector:
        return
    signer = _kumo.dkim.rsa_sha256_signer(
        domain=sender.domain,
        selector=selector,
        headers=["From", "To", "Subject"],
        key=f"{DKIM_DIR}/{sender.domain}/{selector}.key",
    )
    msg.dkim_sign(signer)


@hookimpl
def kumo_smtp_server_message_received(message: Any) -> None:
    tenant = message.get_first_named_header_value("X-Tenant")
    if tenant:
        message.set_meta("tenant", tenant)
    _dkim_sign(message)  # signing must come last


@hookimpl
def kumo_http_message_generated(message: Any) -> None:
    _dkim_sign(message)
