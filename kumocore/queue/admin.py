"""Operator rules over scheduled queues: admin bounces and suspensions (KumoMTA's shapes).

A rule matches queues by ``campaign``, ``tenant``, ``domain`` and ``routing_domain``
(each optional; all given must match) or by explicit ``queue_names``. It stays active for
``duration`` (default 5 minutes) or until ``expires``: a bounce rule also bounces
matching messages injected while it is active, as KumoMTA does.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kumocore.errors import ConfigError
from kumocore.mail.queue_name import QueueNameParts, parse_queue_name
from kumocore.queue.admin_index import RuleIndex
from kumocore.queue.ready_suspend import new_suspension_id, suspension_order

_MATCH_FIELDS = ("campaign", "tenant", "domain", "routing_domain")
_ALLOWED = {*_MATCH_FIELDS, "reason", "duration", "expires", "suppress_logging", "queue_names"}


@dataclass
class QueueRule:
    """One bounce or suspension rule."""

    reason: str
    expires: float
    duration: float
    campaign: str | None = None
    tenant: str | None = None
    domain: str | None = None
    routing_domain: str | None = None
    queue_names: tuple[str, ...] = ()
    suppress_logging: bool = False
    #: Time-ordered (UUIDv7): of two suspensions with the same selectors, the greater id is
    #: the later one on every worker (:meth:`AdminRules.add_suspension`).
    id: str = field(default_factory=new_suspension_id)
    bounced: dict[str, int] = field(default_factory=dict)
    #: ``queue_names`` to look a name up in: a request may name 150,000 queues, and a
    #: tuple made each check a scan (a bounce of 60,000 names over 3,000 queues held the
    #: loop 0.77 s; every message inserted while the rule lasted paid 0.3 ms).
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._names = frozenset(self.queue_names)

    @property
    def selectors(self) -> tuple[str | None, str | None, str | None, str | None, frozenset[str]]:
        """What the rule matches by: two rules with equal selectors hold the same queues."""
        return self.campaign, self.tenant, self.domain, self.routing_domain, self._names

    @property
    def total_bounced(self) -> int:
        return sum(self.bounced.values())

    @property
    def active(self) -> bool:
        return time.time() < self.expires

    def matches(self, queue_name: str) -> bool:
        if self._names:
            return queue_name in self._names
        return self.matches_parsed(queue_name, parse_queue_name(queue_name))

    def matches_parsed(self, queue_name: str, parts: QueueNameParts) -> bool:
        """:meth:`matches`, given ``queue_name`` parsed already (the index parses a name
        once for all the rules it tests)."""
        if self._names:
            return queue_name in self._names
        return all(
            getattr(self, name) is None or getattr(self, name) == getattr(parts, name)
            for name in _MATCH_FIELDS
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "campaign": self.campaign,
            "tenant": self.tenant,
            "domain": self.domain,
            "routing_domain": self.routing_domain,
            "reason": self.reason,
            "duration": f"{max(self.expires - time.time(), 0):.0f}s",
            "bounced": dict(self.bounced),
            "total_bounced": self.total_bounced,
        }


def parse_rule(body: dict[str, Any]) -> QueueRule:
    """Validate a KumoMTA ``BounceV1Request``/``SuspendV1Request`` body."""
    from kumocore.config import parse_duration

    unknown = sorted(set(body) - _ALLOWED)
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(_ALLOWED))}")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason:
        raise ConfigError("field 'reason' is required and must be a non-empty string")
    # Validate every given field, even one another field overrides.
    # null means "not given" (KumoMTA's Option fields); any other falsy value is refused.
    given_duration = body.get("duration")
    if given_duration is not None and not isinstance(given_duration, str):
        # KumoMTA's admin requests take a duration as text ("90s"), as the schema says.
        raise ConfigError("field 'duration' must be a string such as '90s' or '1h30m'")
    duration = parse_duration("5m" if given_duration is None else given_duration, key="duration")
    suppress = body.get("suppress_logging", False)
    if not isinstance(suppress, bool):
        raise ConfigError("field 'suppress_logging' must be true or false")
    if body.get("expires") is not None:
        try:
            expires = datetime.fromisoformat(str(body["expires"])).timestamp()
        except ValueError as exc:
            raise ConfigError(f"field 'expires' must be RFC 3339: {exc}") from exc
        duration = max(expires - time.time(), 0.0)
    else:
        expires = time.time() + duration
    names = body.get("queue_names")
    names = [] if names is None else names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError("field 'queue_names' must be a list of strings")
    for name in _MATCH_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ConfigError(f"field {name!r} must be a string")
    return QueueRule(
        reason=reason,
        expires=expires,
        duration=duration,
        queue_names=tuple(names),
        suppress_logging=suppress,
        campaign=body.get("campaign"),
        tenant=body.get("tenant"),
        domain=body.get("domain"),
        routing_domain=body.get("routing_domain"),
    )


class AdminRules:
    """The active bounce and suspension rules of one node, each kind by id in a
    :class:`~kumocore.queue.admin_index.RuleIndex`: a queue name's rules are found
    without testing every rule."""

    def __init__(self) -> None:
        self.bounces: RuleIndex[QueueRule] = RuleIndex()
        self.suspensions: RuleIndex[QueueRule] = RuleIndex()
        #: Operator suspensions a later one with the same selectors replaced, with their
        #: ends (forgotten then): one that arrives late from a peer must not hold again.
        self._replaced: dict[str, float] = {}

    @staticmethod
    def _prune(rules: RuleIndex[QueueRule]) -> list[QueueRule]:
        rules.sweep(time.time())  # a listing reads every rule anyway
        return list(rules.values())

    def add_suspension(self, rule: QueueRule) -> bool:
        """Hold the queues ``rule`` matches; True when it holds now. As in KumoMTA, an
        operator's suspension replaces an active one with the same selectors (the
        replaced id is gone: listing and cancelling no longer find it). Workers apply the
        suspensions they are asked for and those their peers pass on in any order, so the
        later one is the one with the greater time-ordered id, wherever it arrives last.
        Automation's suspensions (ids that are not UUIDs: ``<site>-<hash>``) are kept
        apart, as KumoMTA keeps them apart from the admin ones."""
        self._forget_replaced()
        if rule.id in self._replaced:
            return False
        if _operator(rule):
            # Only rules filed with this one can have its selectors: with 10,000 active,
            # testing them all made adopting a peer's rules quadratic.
            for other in [r for r in self.suspensions.alike(rule) if r.id != rule.id]:
                if not (_operator(other) and other.active and other.selectors == rule.selectors):
                    continue
                if suspension_order(other.id) > suspension_order(rule.id):
                    self._replaced[rule.id] = rule.expires
                    return False
                del self.suspensions[other.id]
                self._replaced[other.id] = other.expires
        self.suspensions[rule.id] = rule
        return True

    def _forget_replaced(self) -> None:
        now = time.time()
        for gone in [i for i, expires in self._replaced.items() if expires <= now]:
            del self._replaced[gone]

    def bounce_rule_for(self, queue_name: str) -> QueueRule | None:
        """The first-added active bounce rule that matches ``queue_name``, or None."""
        if not self.bounces:  # the common case, asked for every message queued or recovered
            return None
        matching = self.bounces.matching(queue_name)
        return min(matching, key=_order)[1] if matching else None

    def suspension_for(self, queue_name: str) -> QueueRule | None:
        """The active suspension that holds ``queue_name`` (the newest, when several do:
        KumoMTA leaves the choice open), or None."""
        if not self.suspensions:  # the common case, asked for every message routed
            return None
        matching = self.suspensions.matching(queue_name)
        return max(matching, key=_order)[1] if matching else None

    def suspended_until(self, queue_name: str) -> float | None:
        """When the last suspension of ``queue_name`` ends (the status page shows it)."""
        if not self.suspensions:
            return None
        until = [rule.expires for _, rule in self.suspensions.matching(queue_name)]
        return max(until) if until else None

    def list_bounces(self) -> list[QueueRule]:
        return self._prune(self.bounces)

    def list_suspensions(self) -> list[QueueRule]:
        return self._prune(self.suspensions)


def _order(match: tuple[int, QueueRule]) -> int:
    """A match's place among its kind's rules: the order a dict of them kept."""
    return match[0]


def _operator(rule: QueueRule) -> bool:
    """Whether ``rule`` is an operator's (admin API, Lua ``kumo.api.admin``): a UUID id."""
    try:
        uuid.UUID(rule.id)
    except ValueError:
        return False
    return True
