"""SMTP AUTH's AuthInfo, through a real node and :mod:`smtplib` from an untrusted address:
``smtp_server_auth_plain`` returning an AuthInfo (identities and groups) as KumoMTA's
docs show, ``conn_meta:auth_info()`` in a later event, an ACL decided on it with
``kumo.aaa.query_resource_access``, and the ``Authentication`` records of the acct log."""

from __future__ import annotations

import asyncio
import base64
import smtplib
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common.smtp_client import insecure_client_context
from kumocore.testing import Node
from tests.http.test_acl_acct import read_records

UNTRUSTED = "127.0.0.5"

ACL_MAP = """
[[acl."http_listener/*/api/admin/queue-summary"]]
allow = true
privileges = ["GET"]
identity.Group = "ops"
"""

# The AuthInfo example of KumoMTA's smtp_server_auth_plain page, with more users; MAIL FROM
# answers with what the session's AuthInfo holds, so the client can see it.
POLICY = r"""
local kumo = require 'kumo'

kumo.on('pre_init', function()
  kumo.aaa.configure_acct_log { log_dir = 'ACCT_DIR' }
end)

local acl = kumo.aaa.load_acl_map 'ACL_PATH'
kumo.on('get_acl_definition', function(resource)
  return acl:get(resource)
end)

local password_database = {
  ['daniel'] = { password = 'tiger', groups = { 'group1', 'ops' } },
}

kumo.on('smtp_server_auth_plain', function(authz, authc, password, conn_meta)
  if authc == 'plain' then
    return password == 'pw'
  end
  if authc == 'generic' then
    return { identities = { { identity = 'svc-7', context = 'GenericAuth' } } }
  end
  if authc == 'nobody' then
    return { identities = {}, groups = { 'ops' } }
  end
  local entry = password_database[authc]
  if not entry or entry.password ~= password then
    return false
  end
  return {
    identities = {
      { identity = authz, context = 'SmtpAuthPlainAuthorization' },
      { identity = authc, context = 'SmtpAuthPlainAuthentication' },
    },
    groups = entry.groups,
  }
end)

kumo.on('smtp_server_mail_from', function(sender, conn_meta)
  local info = conn_meta:auth_info()
  local ids = {}
  for _, ident in ipairs(info.identities) do
    table.insert(ids, ident.context .. ':' .. ident.identity)
  end
  local resource = kumo.aaa.make_http_url_resource(
    '127.0.0.1:8000', 'http://localhost/api/admin/queue-summary/v1')
  local decision = kumo.aaa.query_resource_access(resource, info, 'GET')
  kumo.reject(550, string.format('peer=%s ids=%s groups=%s authn=%s authz=%s allow=%s',
    tostring(info.peer_address), table.concat(ids, ','), table.concat(info.groups, ','),
    tostring(conn_meta:get_meta('authn_id')), tostring(conn_meta:get_meta('authz_id')),
    tostring(decision.allow)))
end)
"""


def plain(authz: str, authc: str, password: str) -> str:
    return base64.b64encode(f"{authz}\0{authc}\0{password}".encode()).decode()


def session(port: int, authz: str | None, authc: str, password: str) -> tuple[int, str, str]:
    """From the untrusted address: STARTTLS, ``AUTH PLAIN`` (skipped when ``authz`` is
    None), then MAIL FROM; the answers to AUTH and to MAIL FROM."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(UNTRUSTED, 0)) as client:
        client.starttls(context=insecure_client_context())
        client.ehlo()
        code, text = 0, b""
        if authz is not None:
            code, text = client.docmd("AUTH", "PLAIN " + plain(authz, authc, password))
        if code == 421:
            return code, text.decode(), ""  # the server closed the session
        _, mail = client.docmd("MAIL", "FROM:<sender@example.com>")
        return code, text.decode(), mail.decode()


async def start(make_node: Callable[..., Awaitable[Node]], tmp_path: Path) -> Node:
    (tmp_path / "acl.toml").write_text(ACL_MAP)
    policy = POLICY.replace("ACCT_DIR", str(tmp_path / "acct")).replace(
        "ACL_PATH", str(tmp_path / "acl.toml"))
    return await make_node(policy)


async def test_an_auth_info_answer_gives_the_session_its_identities_groups_and_access(
    tmp_path: Path, make_node: Callable[..., Awaitable[Node]]
) -> None:
    node = await start(make_node, tmp_path)
    code, text, mail = await asyncio.to_thread(
        session, node.smtp_port, "boss", "daniel", "tiger")
    assert (code, text) == (235, "2.7.0 AUTH OK!")
    assert mail == (
        f"peer={UNTRUSTED} "
        "ids=SmtpAuthPlainAuthorization:boss,SmtpAuthPlainAuthentication:daniel "
        "groups=group1,ops authn=daniel authz=boss allow=true")


async def test_true_records_both_auth_identities_and_no_group(
    tmp_path: Path, make_node: Callable[..., Awaitable[Node]]
) -> None:
    node = await start(make_node, tmp_path)
    code, _, mail = await asyncio.to_thread(session, node.smtp_port, "", "plain", "pw")
    assert code == 235
    assert mail == (
        f"peer={UNTRUSTED} "
        "ids=SmtpAuthPlainAuthorization:plain,SmtpAuthPlainAuthentication:plain "
        "groups= authn=plain authz=plain allow=false")


async def test_an_identity_of_another_context_is_both_authn_and_authz(
    tmp_path: Path, make_node: Callable[..., Awaitable[Node]]
) -> None:
    node = await start(make_node, tmp_path)
    code, _, mail = await asyncio.to_thread(session, node.smtp_port, "", "generic", "x")
    assert code == 235
    assert mail == (
        f"peer={UNTRUSTED} ids=GenericAuth:svc-7 groups= authn=svc-7 authz=svc-7 allow=false")


async def test_an_unauthenticated_session_has_only_its_peer_address(
    tmp_path: Path, make_node: Callable[..., Awaitable[Node]]
) -> None:
    node = await start(make_node, tmp_path)
    _, _, mail = await asyncio.to_thread(session, node.smtp_port, None, "", "")
    assert mail == f"peer={UNTRUSTED} ids= groups= authn=nil authz=nil allow=false"


async def test_an_auth_info_naming_nobody_is_a_policy_error_not_a_login(
    tmp_path: Path, make_node: Callable[..., Awaitable[Node]]
) -> None:
    node = await start(make_node, tmp_path)
    code, text, _ = await asyncio.to_thread(session, node.smtp_port, "", "nobody", "x")
    # The groups it names are never given to a session: it ends, as for any policy error.
    assert (code, text) == (421, f"4.3.0 {node.hostname} technical difficulties")


async def test_each_attempt_is_an_authentication_record_of_the_acct_log(
    tmp_path: Path, make_node: Callable[..., Awaitable[Node]]
) -> None:
    node = await start(make_node, tmp_path)
    await asyncio.to_thread(session, node.smtp_port, "", "daniel", "wrong")
    await asyncio.to_thread(session, node.smtp_port, "", "daniel", "tiger")
    acct = node.runtime.http_access.acct
    assert acct is not None
    await acct.drain()
    records = [r for r in read_records(tmp_path / "acct") if r["type"] == "Authentication"]
    assert [(r["attempted_identity"], r["success"]) for r in records] == [
        ({"identity": "daniel", "context": "SmtpAuthPlainAuthentication"}, False),
        ({"identity": "daniel", "context": "SmtpAuthPlainAuthentication"}, True),
    ]
    assert records[0]["auth_info"] == {
        "peer_address": UNTRUSTED, "identities": [], "groups": []}
    assert records[1]["auth_info"]["groups"] == ["group1", "ops"]
