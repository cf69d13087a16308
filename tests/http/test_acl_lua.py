"""``kumo.aaa`` from a Lua policy on a real node and HTTP listener: an ACL map file
answering ``get_acl_definition``, an AuthInfo table from ``http_server_validate_auth_basic``,
``set_fall_back_to_acl_map(false)``, and ``query_resource_access`` inside an event."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import kumocore_lua_policy as lua_policy
import pytest

from kumocore.config import HttpListenerConfig
from kumocore.http.server import start_http_listener
from tests.http.conftest import HttpEnv
from tests.reception.harness import HOSTNAME, make_reception

UNTRUSTED = "127.0.0.5"
SUMMARY = "/api/admin/queue-summary/v1"
BODY = {
    "envelope_sender": "a@sender.example",
    "recipients": [{"email": "b@example.com"}],
    "content": "Subject: x\n\ny",
}

ACL_MAP = """
# The node's own start-up and the operator keep the admin API.
[[acl."http_listener/*/api/admin"]]
allow = true
privileges = ["GET", "POST", "DELETE"]
identity.Group = "kumomta:http-listener-trusted-ip"

# ops (from the password check's AuthInfo) may read the queue summary
[[acl."http_listener/*/api/admin/queue-summary"]]
allow = true
privileges = ["GET"]
criteria.AllOf = [{Identity = {Individual = "ops"}}, {Identity = {Group = "readers"}}]

[[acl."http_listener/*/api/inject"]]
allow = true
privileges = ["POST"]
identity.Authenticated = {}
"""

POLICY = r"""
local kumo = require 'kumo'

kumo.on('pre_init', function()
  kumo.aaa.set_fall_back_to_acl_map(false)
  kumo.aaa.set_acl_cache_ttl '1 minute'
  kumo.aaa.set_check_cache_ttl '2 minutes'
end)

local get_acl_map = kumo.memoize(function()
  return kumo.aaa.load_acl_map 'ACL_PATH'
end, { name = 'acl_map_cache', ttl = '5 minutes', capacity = 4 })

kumo.on('get_acl_definition', function(resource)
  return get_acl_map():get(resource)
end)

kumo.on('http_server_validate_auth_basic', function(user, password)
  if password ~= 'pw' then
    return false
  end
  return {
    identities = { { identity = user, context = 'HttpBasicAuth' } },
    groups = { 'readers' },
  }
end)

kumo.on('http_message_generated', function(msg, auth_info)
  local resource = kumo.aaa.make_http_url_resource(
    '127.0.0.1:8000', 'http://localhost/api/admin/queue-summary/v1')
  local ops = {
    identities = { { identity = 'ops', context = 'HttpBasicAuth' } },
    groups = { 'readers' },
  }
  local yes = kumo.aaa.query_resource_access(resource, ops, 'GET')
  local no = kumo.aaa.query_resource_access(resource, {}, 'GET')
  msg:set_meta('acl', kumo.json_encode {
    yes = { allow = yes.allow, resource = yes.resource, rule = yes.rule },
    no = { allow = no.allow, resource = no.resource or 'nil', rule = no.rule or 'nil' },
  })
end)
"""


def basic(user: str, password: str = "pw") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
async def lua_http(tmp_path: Path) -> AsyncIterator[HttpEnv]:
    acl = tmp_path / "custom_acl.toml"
    acl.write_text(ACL_MAP)
    policy = tmp_path / "policy.lua"
    policy.write_text(POLICY.replace("ACL_PATH", str(acl)))
    reception = await make_reception(
        policy_file=str(policy), plugins=(("lua_policy", lua_policy.LuaPolicyPlugin()),)
    )
    config = HttpListenerConfig.from_options({"listen": "127.0.0.1:0", "hostname": HOSTNAME})
    env = HttpEnv(await start_http_listener(reception.runtime, config), reception)
    try:
        yield env
    finally:
        await env.listener.close()
        await reception.close()


async def test_acl_map_from_lua_grants_ops_the_summary_only(lua_http: HttpEnv) -> None:
    status, body, _ = await lua_http.request("GET", SUMMARY, source=UNTRUSTED, headers=basic("ops"))
    assert status == 200 and isinstance(body, dict)
    for user, path in (("eve", SUMMARY), ("ops", "/api/admin/bounce/v1")):
        status, text, _ = await lua_http.request("GET", path, source=UNTRUSTED, headers=basic(user))
        assert (status, text) == (401, f"{UNTRUSTED} not permitted GET on {path}")


async def test_without_fall_back_the_default_map_grants_nothing(lua_http: HttpEnv) -> None:
    # The product default lets trusted hosts read /metrics; this policy's map does not.
    status, text, _ = await lua_http.request("GET", "/metrics")
    assert (status, text) == (401, "127.0.0.1 not permitted GET on /metrics")
    assert (await lua_http.request("GET", SUMMARY))[0] == 200  # the map's admin rule


async def test_cache_ttls_set_from_pre_init(lua_http: HttpEnv) -> None:
    control = lua_http.reception.runtime.http_access
    assert (control.acl_cache_ttl, control.check_cache_ttl) == (60.0, 120.0)
    assert control.fall_back_to_acl_map is False


async def test_query_resource_access_from_an_event(lua_http: HttpEnv) -> None:
    status, _ = await lua_http.inject(BODY, source=UNTRUSTED, headers=basic("carol"))
    assert status == 200
    seen = json.loads(lua_http.messages[0].meta["acl"])
    assert seen["yes"] == {
        "allow": True,
        "resource": "http_listener/*/api/admin/queue-summary",
        "rule": {
            "criteria": {
                "AllOf": [{"Identity": {"Individual": "ops"}}, {"Identity": {"Group": "readers"}}]
            },
            "privilege": "GET",
            "access": "Allow",
        },
    }
    assert seen["no"] == {"allow": False, "resource": "nil", "rule": "nil"}


async def test_get_acl_definition_handlers_run_in_order_until_one_returns(
    tmp_path: Path,
) -> None:
    from kumocore.http.acl import AccessControlList
    from tests.plugins.lua_policy.support import load

    runtime, _ = await load(
        tmp_path,
        """
        local kumo = require 'kumo'
        -- No `return` at all: the next handler is asked (an explicit nil would stop).
        kumo.on('get_acl_definition', function(resource) end)
        kumo.on('get_acl_definition', function(resource)
          if resource ~= 'http_listener/*/x' then return nil end
          return kumo.aaa.make_access_control_list {
            { criteria = { Identity = { Any = {} } }, privilege = 'GET', access = 'Deny' },
          }
        end)
        """,
    )
    acl = await runtime.hooks.get_acl_definition("http_listener/*/x")
    assert isinstance(acl, AccessControlList)
    assert [r.to_dict() for r in acl.rules] == [
        {"criteria": {"Identity": "Any"}, "privilege": "GET", "access": "Deny"}
    ]
    assert await runtime.hooks.get_acl_definition("http_listener/*/y") is None
