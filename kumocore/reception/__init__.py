"""Reception: the ESMTP listener and injection, up to "durable, logged, queued".

Owns the SMTP listener (:mod:`.smtp`), ``kumo.make_message`` / ``kumo.inject_message``
(:mod:`.inject_api`), the trace headers added at reception (:mod:`.trace`), listener TLS
(:mod:`.tls`) and the intake (:mod:`.intake`) that every accepted message passes through:
spool, reception record, queue. The HTTP injection endpoint lives with the HTTP listener
(:mod:`kumocore.http`) and hands its messages to the same intake. It does not own what
happens after a message is queued (:mod:`kumocore.queue`).
"""
