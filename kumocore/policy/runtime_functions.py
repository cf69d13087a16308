"""``kumo.*`` functions that need the running :class:`~kumocore.node.runtime.Runtime`.

* ``kumo.validation_failed`` records into ``runtime.validation`` (see
  :mod:`kumocore.policy.validation`);
* ``kumo.invoke_get_*``, ``kumo.format_*_toml`` and ``kumo.compute_*_constraints`` read
  the effective configuration of a queue, pool, source or path — policy first, then
  plugins and defaults — as KumoMTA's helper modules do
  (:mod:`kumocore.policy.config_functions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kumocore.policy.config_functions import make_config_functions

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost


def make_runtime_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
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
        **make_config_functions(runtime),
    }
