"""An MTA-STS policy (RFC 8461) as text: the ``_mta-sts`` TXT record, the policy file, the
host patterns, and the error KumoMTA gives when an ``enforce`` policy allows no MX host.

Pure parsing and matching; discovery, the cache and applying a policy to an MX set are
:mod:`kumocore.delivery.mta_sts`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kumocore.digits import decimal
from kumocore.dns.site_name import split_port

MAX_MAX_AGE = 31_557_600  # one year, RFC 8461 §3.2
MODES = ("enforce", "testing", "none")
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


class PolicyError(ValueError):
    """A TXT record or policy file that does not follow RFC 8461."""


@dataclass(frozen=True)
class StsPolicy:
    mode: str
    mx: tuple[str, ...]
    max_age: int
    id: str = ""

    def allows(self, host: str) -> bool:
        """RFC 8461 §4.1: an exact name, or ``*.parent`` matching one leftmost label."""
        name = split_port(host)[0].lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                label, _, parent = name.partition(".")
                if label and parent == pattern[2:]:
                    return True
            elif name == pattern:
                return True
        return False


def parse_txt(records: list[str]) -> str | None:
    """The policy ``id`` of the one ``v=STSv1`` TXT record; None when there is none or
    more than one (RFC 8461 §3.1: then the domain has no policy)."""
    ids = []
    for record in records:
        fields = [f.strip() for f in record.split(";") if f.strip()]
        if not fields or fields[0] != "v=STSv1":
            continue
        values = dict(f.partition("=")[::2] for f in fields[1:])
        if not _ID.match(values.get("id", "")):
            continue
        ids.append(values["id"])
    return ids[0] if len(ids) == 1 else None


def parse_policy(text: str, policy_id: str = "") -> StsPolicy:
    """Parse a policy file; :class:`PolicyError` names what is wrong."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"policy line without a colon: {line[:80]!r}")
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(value.lower().rstrip("."))
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError("policy version is not STSv1")
    mode = fields.get("mode", "")
    if mode not in MODES:
        raise PolicyError(f"policy mode {mode!r} is not enforce, testing or none")
    age_text = fields.get("max_age", "")
    age = decimal(age_text, max_digits=10)
    if age is None:
        raise PolicyError(f"policy max_age {age_text!r} is not a number of seconds")
    if mode != "none" and not mx:
        raise PolicyError(f"a {mode} policy names no mx")
    return StsPolicy(mode, tuple(mx), min(age, MAX_MAX_AGE), policy_id)


def enforce_error(domain: str, hosts: Iterable[str], policy: StsPolicy) -> str:
    """KumoMTA's text for an ``enforce`` policy of ``domain`` that allows none of ``hosts``
    (as resolved: final dot, ``:port``), lists written as its Rust ``Debug`` writes them."""
    return (
        f"MTA-STS enforce policy for {domain} permits none of its MX hosts {_listed(hosts)}; "
        f"allowed mx patterns: {_listed(policy.mx)}. The destination is undeliverable "
        "until its MTA-STS policy is corrected."
    )


def _listed(names: Iterable[str]) -> str:
    """``["a.example.", "b.example."]``: names listed as KumoMTA's error text lists them."""
    quoted = ('"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"' for name in names)
    return "[" + ", ".join(quoted) + "]"
