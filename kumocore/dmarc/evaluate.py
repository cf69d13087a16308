"""One DMARC evaluation (RFC 7489 §6.6), following KumoMTA's order of steps.

1. Query ``_dmarc.<From domain>``. A usable record there is applied with ``p``.
2. Otherwise (no record, or DNS failed) query ``_dmarc.<organizational domain>`` if that is
   a different name, and apply its record with ``sp`` (``p`` when there is no ``sp``).
3. ``pct``: a message outside the sampled percentage passes ("sampled_out").
4. Pass when DKIM or SPF is aligned, else the policy's disposition.

So at most two DNS queries per message. As in KumoMTA, a domain without any record gives
``PermError`` (RFC 7489 would say ``none``), a DNS failure ``TempError``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kumocore.dmarc.alignment import Alignment, check_dkim, check_spf
from kumocore.dmarc.psl import normalize_domain, organizational_domain
from kumocore.dmarc.record import Discovery, DmarcRecord, Lookup, fetch_record
from kumocore.dns.resolver import Resolver

#: KumoMTA's disposition names (the ``disposition`` field of ``check_msg``'s answer).
PASS, NONE, QUARANTINE, REJECT = "Pass", "None", "Quarantine", "Reject"
TEMPERROR, PERMERROR = "TempError", "PermError"
_FOR_POLICY = {"none": NONE, "quarantine": QUARANTINE, "reject": REJECT}


@dataclass(frozen=True)
class DmarcInput:
    from_domain: str
    #: The envelope sender's domain (``""`` for the null sender).
    mail_from_domain: str | None
    dkim_results: Sequence[Mapping[str, Any]]
    spf_result: Mapping[str, Any]


@dataclass
class DmarcOutcome:
    disposition: str
    reason: str
    #: ``policy.<tag>`` for each tag of the record that was applied.
    props: dict[str, str] = field(default_factory=dict)


def _policy_props(record: DmarcRecord) -> dict[str, str]:
    return {f"policy.{tag}": value for tag, value in sorted(record.tags.items())}


def apply_record(record: DmarcRecord, check: DmarcInput, *, organizational: bool,
                 sample: Callable[[], int]) -> DmarcOutcome:
    """Steps 3 and 4 for the record found; ``sample()`` draws 0..99 for ``pct``."""
    props = _policy_props(record)
    if sample() >= record.pct:
        return DmarcOutcome(PASS, f"sampled_out due to pct={record.pct}", props)
    alignment = Alignment()
    check_dkim(alignment, record.align_dkim, check.from_domain, check.dkim_results)
    check_spf(alignment, record.align_spf, check.from_domain, check.spf_result,
              check.mail_from_domain)
    if alignment.passed:
        return DmarcOutcome(PASS, "Success", props)
    disposition = _FOR_POLICY[record.policy_for(organizational)]
    return DmarcOutcome(disposition, alignment.failure_reason(), props)


def _no_record(found: Discovery, name: str, shown: str) -> DmarcOutcome:
    """KumoMTA's reasons: ``shown`` is the From domain itself, or the queried name of the
    organizational domain."""
    if found.failure is Lookup.TEMPERROR:
        return DmarcOutcome(TEMPERROR, f"DNS records could not be resolved for {name}")
    return DmarcOutcome(PERMERROR, f"no DMARC records found for {shown}")


async def evaluate(resolver: Resolver, check: DmarcInput,
                   sample: Callable[[], int] | None = None) -> DmarcOutcome:
    """Discover the policy for ``check.from_domain`` and apply it."""
    draw = sample or (lambda: random.randrange(100))
    exact = await fetch_record(resolver, f"_dmarc.{check.from_domain}")
    if exact.record is not None:
        return apply_record(exact.record, check, organizational=False, sample=draw)
    normalized = normalize_domain(check.from_domain)
    org_domain = organizational_domain(normalized)
    if org_domain is None:
        return DmarcOutcome(NONE, f"no DMARC records found for {check.from_domain}")
    if org_domain == normalized:
        return _no_record(exact, f"_dmarc.{check.from_domain}", check.from_domain)
    name = f"_dmarc.{org_domain}"
    found = await fetch_record(resolver, name)
    if found.record is not None:
        return apply_record(found.record, check, organizational=True, sample=draw)
    return _no_record(found, name, name)
