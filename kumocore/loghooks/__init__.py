"""Log hooks (``kumo.configure_log_hook``): log records as spooled messages, delivered by
policy-built senders (:mod:`kumocore.delivery.custom_lua`); plus the AMQP and NATS
clients those senders use and plain log sinks for Python policies. See docs/logging.md.

Owns turning log records into messages for policy-built senders and the AMQP/NATS/webhook
clients. It does not own building records (:mod:`kumocore.logs.journal`) or feeding sinks
(:mod:`kumocore.logs.dispatch`); a log hook is one more sink there.
"""
