"""The active admin rules of one kind, indexed by the queue-name part each matches exactly.

Every message queued asks for the bounce rule that matches its scheduled queue, and every
message routed (or taken from a ready queue) for the suspension: testing each rule made
2,000 active rules cost 5 to 10 ms a message. Here a rule is filed under one key it
matches exactly, so a queue name's candidates are found with a few dict lookups:

* a rule with ``queue_names``: under each name (it matches nothing else);
* any other: under the first of its ``domain``, ``campaign``, ``tenant``,
  ``routing_domain`` that it gives (a queue it matches has that very part);
* a rule with no selector at all (automation's, or the CLI's ``--everything``): in a short
  list every lookup reads.

Each candidate is then tested with the rule's own predicate, so the answers are the ones a
test of every rule gives. The mapping keeps a dict's order (a rule set again under its id
keeps its place) as a number per rule: the first or last match in that order is a min or
max over the few candidates. Ends sit in a heap, so a lookup drops the lapsed rules (as
the scan did) without reading the others. A rule's selectors must not change while it
is in the index (nothing does that: they are fixed when the rule is parsed); its end may.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterator, MutableMapping, ValuesView
from typing import Protocol, TypeVar

from kumocore.mail.queue_name import QueueNameParts, parse_queue_name

__all__ = ["IndexedRule", "RuleIndex"]

#: Selectors a rule is filed under, most selective first: a domain is the usual one.
_FIELDS = ("domain", "campaign", "tenant", "routing_domain")
#: Stale heap entries (cancelled rules) tolerated before the heap is rebuilt.
_SLACK = 64


class IndexedRule(Protocol):
    """What the index reads of a rule (:class:`kumocore.queue.admin.QueueRule`, which
    imports this module: a structural type keeps the import graph free of circles)."""

    @property
    def expires(self) -> float: ...
    @property
    def queue_names(self) -> tuple[str, ...]: ...
    @property
    def domain(self) -> str | None: ...
    @property
    def campaign(self) -> str | None: ...
    @property
    def tenant(self) -> str | None: ...
    @property
    def routing_domain(self) -> str | None: ...

    def matches_parsed(self, queue_name: str, parts: QueueNameParts) -> bool: ...


R = TypeVar("R", bound=IndexedRule)
#: Where a rule is filed: a field (``""``: queue_names; None: unindexed) and its keys.
_Place = tuple[str | None, tuple[str, ...]]


def _place_of(rule: IndexedRule) -> _Place:
    if rule.queue_names:
        return "", rule.queue_names
    for field in _FIELDS:
        value = getattr(rule, field)
        if value is not None:
            return field, (value,)
    return None, ()


def _end(rule: IndexedRule) -> float:
    # A NaN end is lapsed (``now < nan`` is false) and would break the heap's order.
    return rule.expires if rule.expires == rule.expires else float("-inf")


class RuleIndex(MutableMapping[str, R]):
    """Rules by id (a dict to its users: ``admin.bounces[rule.id] = rule``, ``pop``,
    ``in``), with the lookups :class:`kumocore.queue.admin.AdminRules` answers from."""

    def __init__(self) -> None:
        self._rules: dict[str, R] = {}
        self._order: dict[str, int] = {}  # the dict's order, as numbers to compare
        self._counter = itertools.count()
        self._places: dict[str, _Place] = {}
        self._buckets: dict[str, dict[str, tuple[str, ...]]] = {f: {} for f in ("", *_FIELDS)}
        self._unindexed: dict[str, None] = {}  # ids, ordered (a set would not be)
        self._ends: list[tuple[float, int, str, R]] = []  # (end, tie-break, id, rule)

    def __getitem__(self, key: str) -> R:
        return self._rules[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, key: object) -> bool:
        return key in self._rules

    def values(self) -> ValuesView[R]:
        return self._rules.values()

    def __setitem__(self, key: str, rule: R) -> None:
        if key in self._rules:
            self._unfile(key)  # replaced in place: keeps its order, as a dict does
        else:
            self._order[key] = next(self._counter)
        self._rules[key] = rule
        self._file(key, rule)
        self._push(key, rule)

    def __delitem__(self, key: str) -> None:
        del self._rules[key]  # KeyError for an unknown id, as a dict raises
        self._unfile(key)
        del self._order[key]
        # Its heap entry stays (a heap cannot drop one cheaply): skipped when it surfaces.
        self._compact()

    def _file(self, key: str, rule: R) -> None:
        field, keys = _place_of(rule)
        if field is None:
            self._places[key] = field, keys
            self._unindexed[key] = None
            return
        # In bulk, one tuple for all: a request may name 95,000 queues, and a tuple and a
        # store per name held the event loop 70 ms (and doubled the rule's memory).
        buckets = self._buckets[field]
        alone: tuple[str, ...] = (key,)
        fresh = dict.fromkeys(keys, alone)  # duplicates dropped: a bucket lists it once
        for value in fresh.keys() & buckets.keys():  # names other rules hold too: few
            fresh[value] = (*buckets[value], key)
        buckets.update(fresh)
        self._places[key] = field, tuple(fresh)  # where it is filed, whatever it becomes

    def _unfile(self, key: str) -> None:
        field, keys = self._places.pop(key)
        if field is None:
            del self._unindexed[key]
            return
        buckets = self._buckets[field]
        held = list(map(buckets.pop, keys))  # in bulk too: most names are its alone
        for value, filed in zip(keys, held, strict=True):
            if len(filed) > 1:
                buckets[value] = tuple(k for k in filed if k != key)

    def _push(self, key: str, rule: R) -> None:
        heapq.heappush(self._ends, (_end(rule), next(self._counter), key, rule))
        self._compact()

    def _compact(self) -> None:
        # Entries of cancelled or re-set rules wait in the heap until their end: rules
        # added and cancelled with ends years away would make it grow without bound.
        if len(self._ends) > 2 * len(self._rules) + _SLACK:
            self._ends = [(_end(r), next(self._counter), k, r) for k, r in self._rules.items()]
            heapq.heapify(self._ends)

    def drop_lapsed(self, now: float) -> None:
        """Remove the rules that ended by ``now``, reading only those (the heap's top)."""
        # self._ends each time round: removing a rule may rebuild it (_compact).
        while self._ends and self._ends[0][0] <= now:
            _, _, key, rule = heapq.heappop(self._ends)
            if self._rules.get(key) is not rule:
                continue  # cancelled or replaced since
            if now < rule.expires:
                self._push(key, rule)  # its end was moved later after it was filed
            else:
                del self[key]

    def sweep(self, now: float) -> None:
        """Remove every lapsed rule, reading each: also one whose end was moved earlier
        after it was filed (which the heap does not know of yet)."""
        for key in [k for k, r in self._rules.items() if not now < r.expires]:
            del self[key]

    def _candidates(self, queue_name: str, parts: QueueNameParts) -> list[str]:
        """Ids of the rules that may match: all that do, and a few that may not."""
        found = list(self._buckets[""].get(queue_name, ()))
        for field in _FIELDS:
            value = getattr(parts, field)
            if value is not None:
                found += self._buckets[field].get(value, ())
        found += self._unindexed
        return found

    def matching(self, queue_name: str) -> list[tuple[int, R]]:
        """The active rules that match ``queue_name``, each with its place in the order
        (the first-added has the least); lapsed rules are dropped first, as a scan did."""
        now = time.time()
        self.drop_lapsed(now)
        if not self._rules:
            return []
        parts = parse_queue_name(queue_name)
        found: list[tuple[int, R]] = []
        lapsed = False
        for key in self._candidates(queue_name, parts):
            rule = self._rules[key]
            if not now < rule.expires:
                lapsed = True  # its end was moved earlier: lapsed, as a scan would find
            elif rule.matches_parsed(queue_name, parts):
                found.append((self._order[key], rule))
        if lapsed:
            self.sweep(now)
        return found

    def alike(self, rule: IndexedRule) -> list[R]:
        """In order, the rules filed where ``rule`` would be: every rule with its very
        selectors is among them (equal selectors give the same first key)."""
        field, keys = _place_of(rule)
        filed = self._unindexed if field is None else self._buckets[field].get(keys[0], ())
        return [self._rules[key] for key in sorted(filed, key=self._order.__getitem__)]
