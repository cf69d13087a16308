"""``kumo.api.admin.bounce.*`` and ``kumo.api.admin.suspend.*`` called from a policy's
event handlers, on a running node: the rules they make are the admin endpoints' rules
(listed, applied and cancelled as those are), and a bad request fails the handler."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from kumocore.testing.plugin import MakeNode

BOUNCE, SUSPEND = "/api/admin/bounce/v1", "/api/admin/suspend/v1"

POLICY = """
local kumo = require 'kumo'
local admin = kumo.api.admin
kumo.on('smtp_server_message_received', function(msg)
  local recipient = tostring(msg:recipient())
  if recipient:find('^recall@') then
    local id = admin.bounce.bounce { domain = 'gone.test', reason = 'recalled by policy',
                                     duration = '1h' }
    assert(type(id) == 'string' and #id == 36, id)
  elseif recipient:find('^pause@') then
    admin.suspend.suspend { domain = 'slow.test', reason = 'paused by policy',
                            duration = '1h' }
  elseif recipient:find('^clear@') then
    for _, kind in ipairs { 'bounce', 'suspend' } do
      for _, rule in ipairs(admin[kind].list()) do
        assert(admin[kind].delete(rule.id))
        assert(not admin[kind].delete(rule.id))
      end
    end
  elseif recipient:find('^bad@') then
    admin.bounce.bounce { reason = 'x', colour = 'red' }
  end
end)
"""


async def test_a_policy_bounce_rule_bounces_later_mail_of_its_domain_until_deleted(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY)
    await node.send(recipients="recall@dest.test")
    status, listed = await node.admin("GET", BOUNCE)
    assert status == 200
    assert [(r["domain"], r["reason"]) for r in listed] == [("gone.test", "recalled by policy")]
    assert 3590 <= int(listed[0]["duration"].rstrip("s")) <= 3600
    await node.send(recipients="x@gone.test")
    status, [rule] = await node.admin("GET", BOUNCE)
    assert rule["total_bounced"] == 1
    await node.send(recipients="clear@dest.test")
    assert (await node.admin("GET", BOUNCE)) == (200, [])
    await node.send(recipients="y@gone.test")
    assert node.sink is not None
    await node.sink.wait_for(3)
    await asyncio.sleep(0.5)  # x@gone.test, bounced, never comes
    delivered = sorted(m.recipient for m in node.sink.messages)
    assert delivered == ["clear@dest.test", "recall@dest.test", "y@gone.test"]


async def test_a_policy_suspension_is_listed_as_the_endpoint_lists_it_and_deleted(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY)
    await node.send(recipients="pause@dest.test")
    status, listed = await node.admin("GET", SUSPEND)
    assert status == 200 and len(listed) == 1
    assert set(listed[0]) == {"id", "campaign", "tenant", "domain", "reason", "duration"}
    assert (listed[0]["domain"], listed[0]["reason"]) == ("slow.test", "paused by policy")
    await node.send(recipients="clear@dest.test")
    assert (await node.admin("GET", SUSPEND)) == (200, [])


async def test_a_policy_bounce_with_an_unknown_field_fails_the_handler_and_makes_no_rule(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await node.send(recipients="bad@dest.test")
    assert refused.value.smtp_code // 100 in (4, 5)
    assert (await node.admin("GET", BOUNCE)) == (200, [])
