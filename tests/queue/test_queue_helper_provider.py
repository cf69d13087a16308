"""policy-extras.queue's provider back-propagation: a queue whose files name no
provider_name takes the one its egress path configuration gives the destination, so the
records the scheduled queue logs itself (an Expiration) name it, as KumoMTA's helper
does; ``resolve_provider`` answers it to a policy. Real node, Lua policy, recording sink."""

from __future__ import annotations

from pathlib import Path

from kumocore.testing.node import Node, start_node
from kumocore.testing.smtp_sink import RecordingSink

QUEUES = """
[queue.default]
retry_interval = '1s'
max_age = '2s'

[queue.'named.test']
provider_name = 'Named In The File'
"""

POLICY = """
local kumo = require 'kumo'
local queue_module = require 'policy-extras.queue'
queue_module:setup { 'DIR/queues.toml' }

kumo.on('get_egress_path_config', function(domain, source, site)
  if domain == 'big.test' or domain == 'named.test' then
    return kumo.make_egress_path { provider_name = 'BigMail', enable_tls = 'Disabled',
                                   smtp_port = SINK_PORT, prohibited_hosts = {} }
  end
end)

kumo.on('http_message_generated', function(msg)
  msg:set_meta('resolved', tostring(queue_module:resolve_provider('big.test')) .. ','
    .. tostring(queue_module:resolve_provider('small.test')))
end)
"""


async def _node(tmp_path: Path, sink: RecordingSink) -> Node:
    (tmp_path / "queues.toml").write_text(QUEUES)
    policy = POLICY.replace("DIR", str(tmp_path)).replace("SINK_PORT", str(sink.port))
    return await start_node(policy, sink=sink)


async def test_an_expiration_names_the_provider_of_the_destinations_egress_path(
    tmp_path: Path,
) -> None:
    sink = await RecordingSink().start()
    node = await _node(tmp_path, sink)
    try:
        for recipient in ("tempfail@big.test", "tempfail@small.test", "tempfail@named.test"):
            assert await node.send("s@src.test", recipient) == {}
        expired = await node.wait_for("Expiration", count=3, timeout=20)
        providers = {record["recipient"]: record.get("provider_name") for record in expired}
        assert providers == {
            "tempfail@big.test": "BigMail",  # back-propagated from the egress path
            "tempfail@small.test": None,  # its path names none
            "tempfail@named.test": "Named In The File",  # the file's own wins
        }
        # Attempts name their egress path's, whatever the queue's.
        attempts = node.logs("TransientFailure", recipient="tempfail@named.test")
        assert attempts and {r.get("provider_name") for r in attempts} == {"BigMail"}
    finally:
        await node.stop()
        await sink.stop()


async def test_resolve_provider_answers_a_policy(tmp_path: Path) -> None:
    sink = await RecordingSink().start()
    node = await _node(tmp_path, sink)
    try:
        status, body = await node.inject({
            "envelope_sender": "s@src.test", "content": "Subject: t\\r\\n\\r\\nhi\\r\\n",
            "recipients": [{"email": "r@other.test"}]})  # fmt: skip
        assert status == 200, body
        [reception] = await node.wait_for("Reception")
        assert reception["meta"]["resolved"] == "BigMail,nil"
    finally:
        await node.stop()
        await sink.stop()
