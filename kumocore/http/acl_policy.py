"""``kumo.aaa.*``: the policy's side of HTTP access control (KumoMTA's names).

* ``load_acl_map(KEYSOURCE)`` -> an ACL map (``map:get(resource)``);
* ``make_access_control_list(RULES)`` -> an ACL, for ``get_acl_definition`` to return;
* ``make_http_url_resource(LOCAL_ADDR, URL)`` and ``query_resource_access(RESOURCE,
  AUTH_INFO, PRIVILEGE)`` -> ``{allow, rule, resource}``: ad-hoc checks in a policy;
* ``set_acl_cache_ttl``, ``set_check_cache_ttl``, ``set_fall_back_to_acl_map``.

The settings belong to the policy's :class:`~kumocore.http.acl_check.AccessControl`, which
every HTTP listener of the node consults; ``configure_acct_log`` gives it an accounting
log (:mod:`kumocore.http.acl_acct`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kumocore.auth_info import parse_auth_info
from kumocore.config.vault import then_with_secrets
from kumocore.errors import ConfigError
from kumocore.http.acl_acct import AcctLog
from kumocore.http.acl_check import AclDecision, parse_ttl
from kumocore.http.acl_map import load_acl_map, make_access_control_list
from kumocore.http.acl_resource import HttpUrlResource, make_http_url_resource
from kumocore.policy.policyfn import policy_function

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost


def make_aaa_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    """The ``aaa.*`` entries of ``kumo_register_policy_functions``."""

    @policy_function(table=False)
    async def query_resource_access(resource: Any, auth_info: Any, privilege: Any) -> AclDecision:
        """``kumo.aaa.query_resource_access(RESOURCE, AUTH_INFO, PRIVILEGE)``: may the
        session ``AUTH_INFO`` (``{ identities, groups, peer_address }``) do ``PRIVILEGE``
        on ``RESOURCE``? ``{ allow, rule, resource }``: the deciding rule and the
        resource whose ACL held it, both nil when no rule matched (denied by default)."""
        if not isinstance(resource, HttpUrlResource):
            raise ConfigError(
                "kumo.aaa.query_resource_access: the resource must come from "
                f"kumo.aaa.make_http_url_resource, got {resource!r:.80}"
            )
        if not isinstance(privilege, str):
            raise ConfigError(
                f"kumo.aaa.query_resource_access: privilege must be a string, got {privilege!r:.80}"
            )
        info = parse_auth_info({} if auth_info is None else auth_info)
        return await runtime.http_access.query(resource, info, privilege)

    @policy_function(table=False)
    def set_acl_cache_ttl(duration: Any) -> None:
        """How long a ``get_acl_definition`` answer is kept per resource name (default
        ``'5 minutes'``)."""
        runtime.http_access.acl_cache_ttl = parse_ttl(
            duration, "kumo.aaa.set_acl_cache_ttl"
        )

    @policy_function(table=False)
    def set_check_cache_ttl(duration: Any) -> None:
        """How long a decision is kept per (resource, privilege, auth info) (default
        ``'5 minutes'``)."""
        runtime.http_access.check_cache_ttl = parse_ttl(
            duration, "kumo.aaa.set_check_cache_ttl"
        )

    @policy_function(table=False)
    def set_fall_back_to_acl_map(fall_back: Any) -> None:
        """false: ``get_acl_definition`` is the only source of ACLs (default true: the
        product default map answers the resources it leaves nil)."""
        if not isinstance(fall_back, bool):
            raise ConfigError(
                f"kumo.aaa.set_fall_back_to_acl_map takes true or false, got {fall_back!r:.80}"
            )
        runtime.http_access.fall_back_to_acl_map = fall_back

    @policy_function(table=True)
    def configure_acct_log(**options: Any) -> None:
        """Write the authentication/authorization accounting log (``log_dir`` required;
        call it once, from ``pre_init`` or ``init``)."""
        control = runtime.http_access
        if control.acct is not None:
            raise ConfigError("kumo.aaa.configure_acct_log may be called only once")
        control.acct = AcctLog(options)

    return {
        "aaa.configure_acct_log": configure_acct_log,
        "aaa.load_acl_map": policy_function(table=False)(_load_acl_map_or_vault),
        "aaa.make_access_control_list": policy_function(table=False)(make_access_control_list),
        "aaa.make_http_url_resource": policy_function(table=False)(make_http_url_resource),
        "aaa.query_resource_access": query_resource_access,
        "aaa.set_acl_cache_ttl": set_acl_cache_ttl,
        "aaa.set_check_cache_ttl": set_check_cache_ttl,
        "aaa.set_fall_back_to_acl_map": set_fall_back_to_acl_map,
    }


def _load_acl_map_or_vault(source: Any) -> Any:
    """``kumo.aaa.load_acl_map(KEYSOURCE)``: a file name, ``{ key_data = '...' }`` or a
    HashiCorp Vault source (read before parsing: Lua waits for it, Python awaits it)."""
    return then_with_secrets("kumo.aaa.load_acl_map", [source], load_acl_map)
