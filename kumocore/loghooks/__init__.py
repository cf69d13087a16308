"""Log hooks (``kumo.configure_log_hook``): log records as spooled messages, delivered by
policy-built senders (:mod:`kumocore.delivery.custom_lua`); plus the AMQP and NATS
clients those senders use and plain log sinks for Python policies. See docs/logging.md."""
