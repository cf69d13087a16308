"""MTA-STS in the table of ``kumo.dns.lookup_mx``, as KumoMTA fills it.

KumoMTA applies a destination's MTA-STS policy while it resolves the MX set, so the table
a policy gets from ``kumo.dns.lookup_mx`` is the set delivery routes with: an ``enforce``
policy has already removed the hosts its ``mx`` patterns do not allow (a policy allowing
none of them makes the lookup fail), and ``mta_sts`` names the mode that applied
(``'None'``, ``'Testing'`` or ``'Enforce'``). In kumocore delivery applies the policy after
:meth:`~kumocore.dns.resolver.Resolver.lookup_mx` (:class:`kumocore.delivery.mta_sts.MtaSts`,
which registers itself on its resolver); ``kumo.dns.lookup_mx`` applies that same
instance, so a policy's lookup and delivery share one policy cache and one fetch:

* the default resolver uses delivery's policies (made here on first use when no queue
  manager has made them yet, e.g. while a policy loads; the queue manager's replace them);
* a resolver of ``kumo.dns.define_resolver`` discovers policies through itself, as KumoMTA
  does, with the default's fetch settings, into the same policy cache (KumoMTA keeps one
  per node: a policy cached under an ``id`` serves every resolver that finds that ``id``);
* ``kumo.dns.set_mta_sts_enabled(false)`` turns it off for every resolver (a node-wide
  switch in KumoMTA); then no policy is looked up and ``mta_sts`` is ``'None'``.

Only a real MX set is subject to a policy: not a domain literal, not the implicit MX of a
domain without MX records. A null MX (``MX 0 .``) is one, as in KumoMTA: a ``testing``
policy shows as ``'Testing'``, and an ``enforce`` policy, allowing no host ``.``, fails
the lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.dns.lists import NamedResolvers
    from kumocore.dns.resolver import MxStsPolicies, Resolver


def policies_for(resolvers: NamedResolvers, resolver: Resolver) -> MxStsPolicies:
    """The MTA-STS policies that apply to MX sets ``resolver`` resolved."""
    base = resolvers.default.mta_sts
    if base is None:
        # Imported here: kumocore.delivery builds on kumocore.dns, not the other way round.
        from kumocore.delivery.mta_sts import MtaSts

        base = MtaSts(resolvers.default)  # registers itself as the default's
    if resolver is resolvers.default:
        return base
    return base.following(resolver)  # the same one each time, while ``base`` stays


async def lookup_mx_table(
    resolvers: NamedResolvers, domain: str, resolver_name: str | None = None
) -> dict[str, Any]:
    """``kumo.dns.lookup_mx(domain, resolver_name)``: the MX set of the default or the
    named resolver with the domain's MTA-STS policy applied, as KumoMTA's table."""
    resolver = resolvers.get(resolver_name)
    mx = await resolver.lookup_mx(domain)
    if resolvers.default.mta_sts_enabled and mx.is_mx:
        # The policy domain is the resolved name, never ``domain:port`` (as KumoMTA's).
        policy_domain = mx.domain_name.rstrip(".")
        mx = await policies_for(resolvers, resolver).apply(policy_domain, mx)
    return mx.to_policy_table()
