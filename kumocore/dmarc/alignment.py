"""Identifier alignment (RFC 7489 §3.1): do the domains that passed DKIM or SPF match the
RFC5322.From domain?

Strict: the same name (after normalization). Relaxed: the same organizational domain,
from the Public Suffix List. The inputs are authentication results as
``msg:dkim_verify()`` and ``kumo.spf.check_msg`` give them; only ``pass`` results count,
DKIM through their ``header.d`` prop, SPF through ``smtp.mailfrom`` (its domain part),
else ``smtp.helo``, else the envelope sender's domain. Failure wording is KumoMTA's, so the
reasons read the same in Authentication-Results headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kumocore.dmarc.psl import normalize_domain, organizational_domain


def is_aligned(mode: str, from_domain: str, domain: str) -> bool:
    """``mode`` is ``relaxed`` or ``strict``."""
    if mode == "strict":
        return normalize_domain(from_domain) == normalize_domain(domain)
    from_org = organizational_domain(from_domain)
    return from_org is not None and from_org == organizational_domain(domain)


def _is_pass(result: Mapping[str, Any]) -> bool:
    value = result.get("result")
    return isinstance(value, str) and value.lower() == "pass"


def _props(result: Mapping[str, Any]) -> Mapping[str, Any]:
    props = result.get("props")
    return props if isinstance(props, Mapping) else {}


@dataclass
class Alignment:
    """The outcome for one record's ``adkim``/``aspf`` modes."""

    dkim: bool = False
    spf: bool = False
    #: Why each side failed, in the order seen (the first SPF reason wins, then DKIM's).
    dkim_errors: list[str] = field(default_factory=list)
    spf_errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.dkim or self.spf

    def failure_reason(self) -> str:
        reasons = self.spf_errors or self.dkim_errors
        return reasons[0] if reasons else "No aligned DKIM or SPF"


def check_dkim(alignment: Alignment, mode: str, from_domain: str,
               dkim_results: Sequence[Mapping[str, Any]]) -> None:
    """Aligned when any passing signature's ``d=`` aligns; non-passing ones are skipped."""
    for result in dkim_results:
        if not _is_pass(result):
            continue
        signing_domain = _props(result).get("header.d")
        if not isinstance(signing_domain, str):
            alignment.dkim_errors.append("DMARC: DKIM signature missing 'd=' tag")
            continue
        if is_aligned(mode, from_domain, signing_domain):
            alignment.dkim = True
            alignment.dkim_errors.clear()
            return
        alignment.dkim_errors.append(f"DMARC: DKIM {mode} check failed")


def spf_domain(spf_result: Mapping[str, Any], mail_from_domain: str | None) -> str | None:
    """The domain SPF authenticated: ``smtp.mailfrom``'s domain, else ``smtp.helo``."""
    props = _props(spf_result)
    mail_from = props.get("smtp.mailfrom")
    if isinstance(mail_from, str) and mail_from:
        return mail_from.rpartition("@")[2]
    helo = props.get("smtp.helo")
    if isinstance(helo, str) and helo:
        return helo
    return mail_from_domain


def check_spf(alignment: Alignment, mode: str, from_domain: str,
              spf_result: Mapping[str, Any], mail_from_domain: str | None) -> None:
    """Aligned when SPF passed for a domain aligned with the From domain."""
    if not _is_pass(spf_result):
        return
    domain = spf_domain(spf_result, mail_from_domain)
    if domain is None:
        return
    if is_aligned(mode, from_domain, domain):
        alignment.spf = True
    else:
        alignment.spf_errors.append(f"DMARC: SPF {mode} check failed")
