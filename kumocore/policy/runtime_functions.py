"""``kumo.*`` functions that need the running :class:`~kumocore.node.runtime.Runtime`.

* ``kumo.validation_failed`` records into ``runtime.validation`` (see
  :mod:`kumocore.policy.validation`);
* ``kumo.invoke_get_egress_path_config(domain, source, site)`` runs the
  ``get_egress_path_config`` lookup — policy first, then plugins and defaults — as
  KumoMTA's helper modules do to read the effective shaping of a path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.policy.policy_host import PolicyHost


def make_runtime_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    async def invoke_get_egress_path_config(
        routing_domain: str, egress_source: str, site_name: str
    ) -> EgressPathConfig | None:
        """The effective egress path configuration for (domain, source, site)."""
        return await runtime.hooks.get_egress_path_config(
            str(routing_domain), str(egress_source), str(site_name)
        )

    def configure_automation(
        rules_for: Any, publish: Any, subscribe: Any, could_match: Any = None
    ) -> Any:
        """Set up traffic shaping automation (called by the shaping helper's
        ``setup_with_automation``; see docs/traffic-shaping-automation.md)."""
        from kumocore.tsa.setup import configure

        return configure(runtime, rules_for, publish, subscribe, could_match)

    return {
        "automation.configure": configure_automation,
        "validation_failed": runtime.validation.validation_failed,
        "invoke_get_egress_path_config": invoke_get_egress_path_config,
    }
