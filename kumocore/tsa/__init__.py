"""Traffic shaping automation (KumoMTA's TSA): rules matched against delivery records,
actions (suspensions, config overrides) shared by every node through a store.

See ``docs/traffic-shaping-automation.md``.

Owns the automation rules, their matching, the action store and the automation service and
its endpoints. It does not own the queues the actions apply to:
:mod:`kumocore.queue.automation` says what the queues need of it.
"""

from kumocore.tsa.rules import Action, RecordView, Rule, make_rule
from kumocore.tsa.store import ActionStore, ActiveAction, LocalActionStore

__all__ = [
    "Action", "ActionStore", "ActiveAction", "LocalActionStore", "RecordView", "Rule",
    "make_rule",
]  # fmt: skip
