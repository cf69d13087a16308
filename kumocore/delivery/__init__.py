"""Outbound delivery on the wire: the SMTP client (:mod:`.client`, one connection to one MX
address, reused for many messages), its TLS, DANE, MTA-STS, AUTH and proxy (HAProxy, SOCKS5)
connections, reply parsing, and the non-SMTP protocols (maildir, ``custom_lua``).

Owns how one attempt talks to a destination and what reply it got. It does not own which
messages go where or when (routing, ready queues and rates are :mod:`kumocore.queue`), nor
what an outcome means for the message (:mod:`kumocore.queue.outcomes`).
"""
