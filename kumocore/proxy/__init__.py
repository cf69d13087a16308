"""KumoProxy in kumocore: ``kumocore proxy serve``, a SOCKS5 server for egress sources.

KumoMTA's ``proxy-server`` executable lets MTAs send from IP addresses that live on other
hosts: a client binds a source address on the proxy host (SOCKS5 BIND with port 0), then
connects from it (CONNECT), and the proxy relays the bytes. This package runs the same
policies (``require 'proxy'``, ``proxy_init``, ``proxy_server_auth_rfc1929``). It owns
the proxy's wire protocol, its sessions and relay, its listeners and metrics, and the
``proxy`` policy module:

* :mod:`kumocore.proxy.options` — ``proxy.start_proxy_listener``'s options;
* :mod:`kumocore.proxy.socks5` — the wire format, with byte bounds;
* :mod:`kumocore.proxy.session` — one client: handshake, auth, requests, relay;
* :mod:`kumocore.proxy.relay` — bytes both ways with bounded buffers;
* :mod:`kumocore.proxy.listener` — accepting clients (TLS, keepalive, max_connections);
* :mod:`kumocore.proxy.metrics` — KumoProxy's counters for ``/metrics``;
* :mod:`kumocore.proxy.module` — the ``proxy`` policy module and the events;
* :mod:`kumocore.proxy.daemon` — ``serve`` / ``validate``; :mod:`kumocore.proxy.cli`.
"""
