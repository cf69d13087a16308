"""DNS for delivery and policy: MX resolution with KumoMTA's site names, a caching resolver.

* :func:`factor_names` — the ``site_name`` of an MX host set (:mod:`.site_name`);
* :class:`MailExchanger` — the resolved MX set of a destination (:mod:`.mx`);
* :class:`Resolver`, :class:`DnsError` — cached, coalesced lookups (:mod:`.resolver`);
* :func:`make_dns_functions` — the ``kumo.dns.*`` policy functions (:mod:`.policy`);
  ``lookup_mx`` applies delivery's MTA-STS policies to its table (:mod:`.mx_sts`).
* KumoMTA's resolver table (:mod:`.resolver_config`, :mod:`.upstream`) and
  ``kumo.dns.load_resolv_conf`` (:mod:`.resolv_conf`).
* the resolvers ``kumo.dns.define_resolver`` names (:mod:`.lists`), including KumoMTA's
  ``Test`` kind answering from zone texts (:mod:`.static_zones`), which
  ``kumo.dns.configure_resolver { Test = ... }`` gives the default resolver too.

Owns DNS lookups and their cache, and the shape of an MX set. It does not own what delivery
does with it (routing in :mod:`kumocore.queue.routing`, DANE and MTA-STS in
:mod:`kumocore.delivery`).
"""

from __future__ import annotations

from kumocore.dns.errors import DnsError
from kumocore.dns.mx import MailExchanger
from kumocore.dns.policy import make_dns_functions
from kumocore.dns.resolver import Resolver
from kumocore.dns.site_name import factor_names

__all__ = ["DnsError", "MailExchanger", "Resolver", "factor_names", "make_dns_functions"]
