"""The admin rules as they were answered before the index: every rule tested, in a plain
dict's order, every lapsed rule dropped at each question. The oracle the index's tests
compare with (kumocore's own former ``AdminRules``, kept here for that purpose only)."""

from __future__ import annotations

import time

from kumocore.queue.admin import QueueRule, _operator
from kumocore.queue.ready_suspend import suspension_order


class ScanRules:
    """Same questions as :class:`kumocore.queue.admin.AdminRules`, answered by a scan."""

    def __init__(self) -> None:
        self.bounces: dict[str, QueueRule] = {}
        self.suspensions: dict[str, QueueRule] = {}
        self._replaced: dict[str, float] = {}

    @staticmethod
    def _prune(rules: dict[str, QueueRule]) -> list[QueueRule]:
        for rule_id in [r.id for r in rules.values() if not r.active]:
            del rules[rule_id]
        return list(rules.values())

    def add_suspension(self, rule: QueueRule) -> bool:
        now = time.time()
        for gone in [i for i, expires in self._replaced.items() if expires <= now]:
            del self._replaced[gone]
        if rule.id in self._replaced:
            return False
        if _operator(rule):
            for other in [r for r in self.suspensions.values() if r.id != rule.id]:
                if not (_operator(other) and other.active and other.selectors == rule.selectors):
                    continue
                if suspension_order(other.id) > suspension_order(rule.id):
                    self._replaced[rule.id] = rule.expires
                    return False
                del self.suspensions[other.id]
                self._replaced[other.id] = other.expires
        self.suspensions[rule.id] = rule
        return True

    def bounce_rule_for(self, queue_name: str) -> QueueRule | None:
        if not self.bounces:
            return None
        return next((r for r in self._prune(self.bounces) if r.matches(queue_name)), None)

    def suspension_for(self, queue_name: str) -> QueueRule | None:
        if not self.suspensions:
            return None
        matching = [r for r in self._prune(self.suspensions) if r.matches(queue_name)]
        return matching[-1] if matching else None

    def suspended_until(self, queue_name: str) -> float | None:
        if not self.suspensions:
            return None
        until = [r.expires for r in self._prune(self.suspensions) if r.matches(queue_name)]
        return max(until) if until else None

    def list_bounces(self) -> list[QueueRule]:
        return self._prune(self.bounces)

    def list_suspensions(self) -> list[QueueRule]:
        return self._prune(self.suspensions)
