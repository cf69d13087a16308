"""The services of a started node, built once by :meth:`kumocore.node.server.Server.start`.

:class:`Services` is how the parts are wired: the server builds each service in
dependency order (spools → logs → throttles → queues → intake), then freezes them into
one typed object and hands it to what runs on top — listeners, the admin and status
APIs, metrics, and the policy functions that act on the node (``kumo.inject_message``,
throttles, DSNs...). Components below (the queue manager, intake, the automation engine)
are not given the whole object: they take the few services they use at construction, so
the lower layers never import this module or the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kumocore.admin.peers import NodePeers
    from kumocore.dns import Resolver
    from kumocore.logs.dispatch import LogDispatcher
    from kumocore.logs.journal import Journal
    from kumocore.node.node_metrics import NodeMetrics
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.manager import QueueManager
    from kumocore.reception.intake import Intake
    from kumocore.spool.storage_guard import StorageMonitor
    from kumocore.spool.store import MessageStore
    from kumocore.throttle.store import ThrottleStore
    from kumocore.tsa.engine import TsaEngine


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a started node runs, typed; never partly set."""

    hostname: str
    nodeid: str
    hooks: Hooks
    resolver: Resolver
    store: MessageStore
    logs: LogDispatcher
    #: Builds every record the node writes, over ``logs`` (kumocore.logs.journal).
    journal: Journal
    throttles: ThrottleStore
    storage: StorageMonitor  # free space under the spools
    queues: QueueManager
    intake: Intake
    metrics: NodeMetrics
    #: Traffic shaping automation, when the policy set it up (kumocore.tsa).
    tsa: TsaEngine | None = None
    #: The other workers of this node (``serve --workers N``), for node-wide answers.
    node: NodePeers | None = None
