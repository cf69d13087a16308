"""The product default ACL map: KumoMTA's ``assets/acls/default.toml`` rules, plus the
kumocore status page.

Who gets what, by resource (``http_listener/*/<path>`` covers every path below it):

* anyone: ``GET`` liveness (``api/check-liveness``), the OpenAPI document
  (``api-docs/openapi.json``) and ``rapidoc``; ``GET tsa/status``;
* trusted hosts (group ``kumomta:http-listener-trusted-ip``) and any authenticated user:
  ``POST api/inject``;
* trusted hosts only: ``GET``/``POST``/``DELETE`` ``api/admin``, ``GET`` ``metrics``,
  ``metrics.json``, ``api/machine-info``, ``POST api/xfer``, and the traffic shaping
  automation endpoints (``publish_log_v1``, ``get_config_v1``, ``get_suspension_v1``,
  ``subscribe_suspension_v1``, ``get_bounce_v1``, ``subscribe_event_v1``);
* trusted hosts only, kumocore addition: ``GET status`` (the live status page).

Anything else is refused (no rule matches: "not permitted"). A policy replaces entries
per resource through ``get_acl_definition`` (docs/http-api.md, "Access control").
"""

from __future__ import annotations

_TRUSTED = 'identity.Group = "kumomta:http-listener-trusted-ip"'


def _entry(path: str, privileges: str, identity: str) -> str:
    return (
        f'[[acl."http_listener/*/{path}"]]\nallow = true\nprivileges = [{privileges}]\n{identity}\n'
    )


_OPEN = ("api/check-liveness", "rapidoc", "api-docs/openapi.json", "tsa/status")
_TRUSTED_GET = (
    "api/machine-info",
    "metrics",
    "metrics.json",
    "get_config_v1",
    "get_suspension_v1",
    "subscribe_suspension_v1",
    "get_bounce_v1",
    "subscribe_event_v1",
    "status",
)
_TRUSTED_POST = ("api/xfer", "publish_log_v1")

DEFAULT_ACL_TOML = "\n".join(
    [
        *(_entry(path, '"GET"', "identity.Any = {}") for path in _OPEN),
        _entry("api/inject", '"POST"', _TRUSTED),
        _entry("api/inject", '"POST"', "identity.Authenticated = {}"),
        _entry("api/admin", '"GET", "DELETE", "POST"', _TRUSTED),
        *(_entry(path, '"GET"', _TRUSTED) for path in _TRUSTED_GET),
        *(_entry(path, '"POST"', _TRUSTED) for path in _TRUSTED_POST),
    ]
)
