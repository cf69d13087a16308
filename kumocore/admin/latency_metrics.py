"""KumoMTA's latency histograms of one node, for ``/metrics``.

Each histogram is observed where the work happens (:mod:`kumocore.node.latency`); this
module only names them as KumoMTA does and reads them at scrape time:

* ``smtpsrv_transaction_duration``, ``smtpsrv_read_data_duration`` and
  ``smtpsrv_process_data_duration``: the SMTP listener's transactions, the reading of
  their DATA and what follows until the reply
  (:class:`~kumocore.node.node_metrics.SmtpServerCounts`);
* ``message_save_latency``: making a message durable in the spool
  (:meth:`kumocore.spool.store.MessageStore.save`);
* ``queue_insert_latency``: handing a durable message to its scheduled queue;
* ``deliver_message_latency_rollup`` by ``service`` (the protocol: ``smtp_client``,
  ``lua``): one delivery attempt, from the envelope to the final reply;
* ``lua_event_latency`` by ``event``: each policy event that has an implementation
  (Lua or Python), named as KumoMTA names it (``smtp_server_message_received``);
* ``user_lua_latency`` by ``label``: the policy's own timers (``kumo.time.start_timer``),
  one set per process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from kumocore.node.latency import USER_LATENCY, Histogram, histogram_family

if TYPE_CHECKING:
    from kumocore.node.services import Services

__all__ = ["latency_metrics"]

_HELP = {
    "smtpsrv_transaction_duration": "Seconds from an accepted MAIL FROM until the SMTP "
                                    "transaction ended (answered, reset or abandoned).",
    "smtpsrv_read_data_duration": "Seconds from the 354 reply until the final dot of an "
                                  "SMTP transaction's DATA was read.",
    "smtpsrv_process_data_duration": "Seconds from the final dot of an SMTP transaction's "
                                     "DATA until its reply was sent.",
    "message_save_latency": "Seconds to make a message durable in the spool.",
    "queue_insert_latency": "Seconds to hand a durable message to its scheduled queue.",
    "deliver_message_latency_rollup": "Seconds per delivery attempt, by protocol.",
    "lua_event_latency": "Seconds per policy event call that ran an implementation, by "
                         "event.",
    "user_lua_latency": "Seconds a policy's own timers (kumo.time.start_timer) measured, "
                        "by label.",
}
#: What kumocore's hook names carry in front of KumoMTA's event names.
_HOOK_PREFIX = "kumo_"


def _event(hook: str) -> str:
    return hook[len(_HOOK_PREFIX):] if hook.startswith(_HOOK_PREFIX) else hook


def latency_metrics(services: Services, cap: int, other: str) -> Iterator[Metric]:
    """Every latency histogram of the node (labelled ones capped at ``cap`` series)."""
    smtp = services.metrics.smtp_server
    single: dict[str, Histogram] = {
        "smtpsrv_transaction_duration": smtp.transaction,
        "smtpsrv_read_data_duration": smtp.read_data,
        "smtpsrv_process_data_duration": smtp.process_data,
        "message_save_latency": services.store.save_latency,
        "queue_insert_latency": services.queues.insert_latency,
    }
    for name, histogram in single.items():
        yield histogram_family(name, _HELP[name], histogram)
    deliveries = services.queues.outcomes.deliver_latency.series
    yield histogram_family("deliver_message_latency_rollup",
                           _HELP["deliver_message_latency_rollup"], label="service",
                           series=deliveries, limit=cap, other=other)  # fmt: skip
    timings = services.hooks.caller.timings
    events = {_event(hook): t.latency for hook, t in timings.items() if t.latency.count}
    yield histogram_family("lua_event_latency", _HELP["lua_event_latency"], label="event",
                           series=events, limit=cap, other=other)  # fmt: skip
    yield histogram_family("user_lua_latency", _HELP["user_lua_latency"], label="label",
                           series=USER_LATENCY.series, limit=cap, other=other)  # fmt: skip
