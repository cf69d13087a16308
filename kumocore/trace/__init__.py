"""Live SMTP tracing: KumoMTA's ``trace-smtp-server`` and ``trace-smtp-client``.

The package owns the trace bus and its bounded subscriber queues (``bus``), the filters
(``filters``), the events built at more than one line (``events``), the listener's policy
``Callback`` events (``callbacks``), the admin WebSockets
(``ws``, relayed across workers by ``relay``, described by ``openapi``) and the two
commands with their kcli text (``cli``, ``text``).
The listener's sessions and the delivery client publish what they read and write to a
:class:`~kumocore.trace.bus.TraceBus` (:data:`SERVER_TRACE`, :data:`CLIENT_TRACE`); the
admin WebSockets ``/api/admin/trace-smtp-server/v1`` and ``/api/admin/trace-smtp-client/v1``
(:mod:`kumocore.trace.ws`) subscribe with the filter their client sent, and ``kumocore
trace-smtp-server``/``trace-smtp-client`` (:mod:`kumocore.trace.cli`) print what comes.
While nobody traces, a publishing site costs one attribute test (``bus.active``).
"""

from kumocore.trace.bus import CLIENT_TRACE, SERVER_TRACE, Subscriber, TraceBus, TraceEvent

__all__ = ["CLIENT_TRACE", "SERVER_TRACE", "Subscriber", "TraceBus", "TraceEvent"]
