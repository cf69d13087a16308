"""The ``kumo.*`` functions core's subsystems contribute, gathered for the built-in plugin.

DNS lookups and MX limits, DKIM, the runtime's own functions, tasks, HTTP and WebSocket
clients, secrets, throttles, injection, DSNs, DNS lists, SPF, DMARC, AMQP and NATS, the
ready-queue and inject admin APIs, ``kumo.xfer.*`` and ``kumo.aaa.*``. Each subsystem's
module is imported when the functions are registered, not when core is imported.
:mod:`kumocore.policy.builtins` registers them after its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.dns.lists import NamedResolvers
    from kumocore.policy.policy_host import PolicyHost


def make_subsystem_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    """Every subsystem's ``kumo.*`` functions, in the order later ones win a name."""
    from kumocore.dkim.policy import make_dkim_functions
    from kumocore.dns.lists import NamedResolvers
    from kumocore.dns.policy import make_dns_functions
    from kumocore.policy.runtime_functions import make_runtime_functions

    functions: dict[str, Callable[..., Any]] = {}
    # One set of named resolvers for every kumo.dns.* lookup taking a resolver name.
    resolvers = NamedResolvers(runtime.resolver)
    functions.update(make_dns_functions(resolvers))
    from kumocore.dns.mx_limits import make_mx_limit_functions

    functions.update(make_mx_limit_functions(runtime.resolver.mx_limits))
    functions.update(make_dkim_functions())
    functions.update(make_runtime_functions(runtime))
    functions.update(_runtime_io_functions(runtime, resolvers))
    from kumocore.admin.ready_q_policy import make_ready_q_functions

    functions.update(make_ready_q_functions(runtime))  # kumo.api.admin.suspend_ready_q
    from kumocore.admin.rules_policy import make_rule_functions

    functions.update(make_rule_functions(runtime))  # kumo.api.admin.bounce, .suspend
    from kumocore.http.inject_policy import make_inject_api_functions

    functions.update(make_inject_api_functions(runtime))  # kumo.api.inject.inject_v1
    from kumocore.xfer.policy import make_xfer_functions

    functions.update(make_xfer_functions(runtime))  # kumo.xfer.*
    from kumocore.http.acl_policy import make_aaa_functions

    functions.update(make_aaa_functions(runtime))  # kumo.aaa.* (HTTP access control)
    return functions


def _runtime_io_functions(
    runtime: PolicyHost, resolvers: NamedResolvers
) -> dict[str, Callable[..., Any]]:
    """Tasks, HTTP, secrets, throttles, injection and DNS lists (issue 16, item 6)."""
    from kumocore.dkim.verify import use_resolvers
    from kumocore.dmarc.policy import make_dmarc_functions
    from kumocore.dns.lists import make_dns_list_functions
    from kumocore.http.client import make_http_client_functions
    from kumocore.http.websocket_client import make_websocket_functions
    from kumocore.loghooks.amqp_client import make_amqp_functions
    from kumocore.loghooks.nats_client import make_nats_functions
    from kumocore.policy.secrets import make_secrets_functions
    from kumocore.policy.tasks import make_task_functions
    from kumocore.reception.inject_api import make_inject_functions
    from kumocore.reports.dsn import make_dsn_functions
    from kumocore.spf.policy import make_spf_functions
    from kumocore.throttle.policy import make_throttle_functions

    use_resolvers(resolvers)  # msg:dkim_verify() looks keys up through them
    return {
        **make_task_functions(runtime),
        **make_http_client_functions(),
        **make_websocket_functions(),
        **make_secrets_functions(),
        **make_throttle_functions(runtime),
        **make_inject_functions(runtime),
        **make_dsn_functions(runtime),
        **make_dns_list_functions(resolvers),
        **make_spf_functions(resolvers),
        **make_dmarc_functions(resolvers),
        **make_amqp_functions(),
        **make_nats_functions(),
    }
