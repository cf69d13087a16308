"""The queue machine: scheduled queues, egress source selection, egress paths, dispatch.

Owns a message from the moment it is durable and queued until its final outcome: scheduling,
routing to an egress path (source, site: :mod:`kumocore.queue.path`, one object owning its
ready queue, connection slots, rates, connections and sends), retries, admin bounces and
suspensions, and the outcome of each attempt. It does not own the wire
(:mod:`kumocore.delivery`), storage (:mod:`kumocore.spool`) or the records it logs
(:mod:`kumocore.logs.journal`). See "The data path" in docs/contributing.md.
"""

from __future__ import annotations
