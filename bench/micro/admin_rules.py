"""Micro-benchmark: the admin rules a message's queue asks for, a scan against the index.

``python -m bench.micro.admin_rules [--rules 2000] [--rounds 5]``

Each message queued asks for the bounce rule of its scheduled queue, each one routed for
the suspension (:class:`kumocore.queue.admin.AdminRules`). Old: every rule tested, after
dropping the lapsed ones (each read). New: the rules filed under the queue name's parts
(:mod:`kumocore.queue.admin_index`). Rules: ``--rules`` bounces and as many suspensions,
one domain each, every tenth by tenant alone; a queue with no rule ("miss") and one
with a domain rule ("hit"). Best of ``--rounds``, µs per message (both questions).
"""

from __future__ import annotations

import argparse
import time
import timeit

from kumocore.queue.admin import AdminRules, QueueRule


def _scan_first(rules: dict[str, QueueRule], queue_name: str) -> QueueRule | None:
    for rule_id in [r.id for r in rules.values() if not r.active]:
        del rules[rule_id]
    return next((r for r in list(rules.values()) if r.matches(queue_name)), None)


def _scan_last(rules: dict[str, QueueRule], queue_name: str) -> QueueRule | None:
    for rule_id in [r.id for r in rules.values() if not r.active]:
        del rules[rule_id]
    matching = [r for r in list(rules.values()) if r.matches(queue_name)]
    return matching[-1] if matching else None


def make_rules(count: int) -> list[QueueRule]:
    ends = time.time() + 3600
    return [QueueRule(reason="r", expires=ends, duration=3600,
                      tenant=f"t{n}" if n % 10 == 1 else None,
                      domain=None if n % 10 == 1 else f"d{n}.example")
            for n in range(count)]  # fmt: skip


def measure(count: int, rounds: int, queue_name: str) -> tuple[float, float]:
    admin = AdminRules()
    bounces: dict[str, QueueRule] = {}
    suspensions: dict[str, QueueRule] = {}
    for rule in make_rules(count):
        admin.bounces[rule.id] = bounces[rule.id] = rule
    for rule in make_rules(count):
        admin.suspensions[rule.id] = suspensions[rule.id] = rule
    assert _scan_first(bounces, queue_name) is admin.bounce_rule_for(queue_name)
    assert _scan_last(suspensions, queue_name) is admin.suspension_for(queue_name)

    def old() -> None:
        _scan_first(bounces, queue_name)
        _scan_last(suspensions, queue_name)

    def new() -> None:
        admin.bounce_rule_for(queue_name)
        admin.suspension_for(queue_name)

    old_loops, new_loops = max(1, 20_000 // max(count, 1)), 20_000
    old_best = min(timeit.repeat(old, number=old_loops, repeat=rounds)) / old_loops
    new_best = min(timeit.repeat(new, number=new_loops, repeat=rounds)) / new_loops
    return old_best * 1e6, new_best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    hit = f"c:t@d{args.rules // 20 * 10}.example"  # a multiple of ten: a domain rule
    for label, name in (("miss", "c:t@nowhere.example"), ("hit", hit)):
        old, new = measure(args.rules, args.rounds, name)
        print(f"{args.rules} rules, {label}: scan {old:10.2f} us, index {new:6.2f} us per message")


if __name__ == "__main__":
    main()
