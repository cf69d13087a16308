"""The policy of one node in the two-node test (test_two_nodes_end_to_end.py).

Run with ``kumocore serve --policy two_node_policy.py``; everything node-specific comes
from the environment, so both nodes load this one file:

``TWO_NODE_SMTP_PORT``  the node's ESMTP listener port (127.0.0.1)
``TWO_NODE_DIR``        spool and log directory of this node
``TWO_NODE_DNS``        the test DNS server, ``127.0.0.1:<port>``
``TWO_NODE_SINK_PORT``  where every MX host (127.0.0.1) takes mail
``TWO_NODE_REDIS``      ``redis://...`` to share throttles; empty keeps them per node
``TWO_NODE_NAME``       the EHLO name the node's deliveries use, so the sink can tell
                        the nodes apart
``TWO_NODE_RATE``, ``TWO_NODE_CONNECTIONS``, ``TWO_NODE_PER_CONNECTION``  the shaping

No egress source is defined, so both nodes use the "unspecified" pool and source and
their ready queues share one name (``unspecified-><site>@smtp_client``): that name is
what the Redis keys are made of.
"""

from __future__ import annotations

import os
from typing import Any

from kumocore import hookimpl

ENV = os.environ
_kumo: Any = None


@hookimpl
async def kumo_init(kumo: Any) -> None:
    global _kumo
    _kumo = kumo
    var = ENV["TWO_NODE_DIR"]
    kumo.dns.configure_resolver(name_servers=[ENV["TWO_NODE_DNS"]])
    if ENV.get("TWO_NODE_REDIS"):
        await kumo.configure_redis_throttles(node=ENV["TWO_NODE_REDIS"], connect_timeout="5s")
    kumo.define_spool(name="data", path=f"{var}/spool/data", kind="RocksDB")
    kumo.define_spool(name="meta", path=f"{var}/spool/meta", kind="RocksDB")
    kumo.configure_local_logs(log_dir=f"{var}/logs")
    kumo.start_esmtp_listener(
        listen=f"127.0.0.1:{ENV['TWO_NODE_SMTP_PORT']}", relay_hosts=["127.0.0.1"]
    )


@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    return _kumo.make_egress_path(
        smtp_port=int(ENV["TWO_NODE_SINK_PORT"]),
        prohibited_hosts=[],
        enable_tls="Disabled",
        ehlo_domain=ENV.get("TWO_NODE_NAME") or None,
        max_message_rate=ENV.get("TWO_NODE_RATE", "10/s"),
        connection_limit=int(ENV.get("TWO_NODE_CONNECTIONS", "2")),
        max_deliveries_per_connection=int(ENV.get("TWO_NODE_PER_CONNECTION", "5")),
    )
