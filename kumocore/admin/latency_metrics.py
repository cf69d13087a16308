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
  one set per process;
* ``queue_resolve_latency``: finding a message's queue and its configuration
  (:meth:`kumocore.reception.intake.Intake.resolve_queue_config`, before each insert);
* ``ready_queue_insert_latency``: putting a due message in its ready queue (egress path);
* ``message_data_load_latency``: reading a message's body back from the spool;
* ``bounce_classify_latency``: classifying a response, when a classifier answered;
* ``redis_operation_latency`` by ``service``, ``operation`` and ``status``: the plugins'
  Redis commands, one set per process (:mod:`kumocore.node.redis_latency`);
* the log submission metrics (:mod:`kumocore.admin.log_submit_metrics`).

KumoMTA's ``message_meta_load_latency`` has no counterpart: kumocore keeps the meta of
every message it owns in memory and reads meta records back only in the start-up scan,
which KumoMTA does not time either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumocore.admin.log_submit_metrics import log_submit_metrics
from kumocore.admin.series_cap import Families
from kumocore.node.latency import USER_LATENCY, Histogram, histogram_family, histogram_series
from kumocore.node.redis_latency import redis_latency_family
from kumocore.policy.hookcall import event_name

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
    "queue_resolve_latency": "Seconds to find a message's scheduled queue and its "
                             "configuration.",
    "ready_queue_insert_latency": "Seconds to put a due message in its ready queue.",
    "message_data_load_latency": "Seconds to read a message's body back from the spool.",
    "bounce_classify_latency": "Seconds to classify a response into a bounce class.",
}


def latency_metrics(services: Services, cap: int, other: str) -> Families:
    """Every latency histogram of the node (labelled ones capped at ``cap`` series)."""
    smtp = services.metrics.smtp_server
    single: dict[str, Histogram] = {
        "smtpsrv_transaction_duration": smtp.transaction,
        "smtpsrv_read_data_duration": smtp.read_data,
        "smtpsrv_process_data_duration": smtp.process_data,
        "message_save_latency": services.store.save_latency,
        "queue_insert_latency": services.queues.insert_latency,
        "queue_resolve_latency": services.intake.resolve_latency,
        "ready_queue_insert_latency": services.queues.router.ready_insert_latency,
        "message_data_load_latency": services.store.data_load_latency,
        "bounce_classify_latency": services.hooks.bounce_classify_latency,
    }
    for name, histogram in single.items():
        yield histogram_family(name, _HELP[name], histogram)
    deliveries = services.queues.outcomes.deliver_latency.series
    yield from histogram_series("deliver_message_latency_rollup",
                                _HELP["deliver_message_latency_rollup"], label="service",
                                series=deliveries, limit=cap, other=other)  # fmt: skip
    timings = services.hooks.caller.timings
    events = {event_name(hook): t.latency for hook, t in timings.items() if t.latency.count}
    yield from histogram_series("lua_event_latency", _HELP["lua_event_latency"],
                                label="event", series=events, limit=cap,
                                other=other)  # fmt: skip
    # Up to 10,000 labels (LabelledHistograms' bound), ranked in steps.
    yield from histogram_series("user_lua_latency", _HELP["user_lua_latency"],
                                label="label", series=USER_LATENCY.series, limit=cap,
                                other=other)  # fmt: skip
    yield redis_latency_family()
    yield from log_submit_metrics(services.logs, cap, other)
