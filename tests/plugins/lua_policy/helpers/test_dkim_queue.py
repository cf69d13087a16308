"""policy-extras.dkim_sign and policy-extras.queue from data files, called from Lua
event handlers on real messages (signatures verified with dkimpy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from kumocore_lua_policy import LuaPolicyError

from kumocore import Rejection
from kumocore.mail.message import Message
from tests.core.dkim.conftest import _NACL
from tests.plugins.lua_policy.helpers.conftest import Load
from tests.plugins.lua_policy.helpers.support import Key, make_key
from tests.support.vault_server import vault_server

DKIM_POLICY = """
local kumo = require 'kumo'
local dkim_sign = require 'policy-extras.dkim_sign'
local signer = dkim_sign:setup { 'DIR/dkim_data.toml' }
kumo.on('smtp_server_message_received', function(msg) signer(msg) end)
"""


def body(sender: str) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <b@dest.test>\r\nSubject: hi\r\n"
        "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nHello.\r\n"
    ).encode()


def signatures(data: bytes, records: dict[bytes, bytes]) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    count = sum(1 for line in head.split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
    checker, found = dkim.DKIM(data), []
    for index in range(count):
        assert checker.verify(idx=index, dnsfunc=lambda name, timeout=5: records[name])
        found.append(checker.domain)
    return found


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Key]:
    monkeypatch.setattr(dkim, "nacl", _NACL, raising=False)
    return {
        "a.test": make_key(tmp_path / "keys" / "a.test" / "s1.key"),
        "b.test": make_key(tmp_path / "keys" / "b.test" / "ed.key", "ed25519"),
        "esp.test": make_key(tmp_path / "keys" / "esp.test" / "s1.key"),
    }


def records(keys: dict[str, Key]) -> dict[bytes, bytes]:
    return {
        b"s1._domainkey.a.test.": keys["a.test"].txt,
        b"ed._domainkey.b.test.": keys["b.test"].txt,
        b"s1._domainkey.esp.test.": keys["esp.test"].txt,
        b"s1._domainkey.sub.a.test.": keys["a.test"].txt,
    }


DKIM_DATA = """
[base]
selector = "s1"
headers = ["From", "To", "Subject"]
filename = "DIR/keys/{domain}/{selector}.key"
additional_signatures = ["esp"]

[domain."a.test"]
[domain."*.a.test"]
filename = "DIR/keys/a.test/s1.key"
[domain."b.test"]
selector = "ed"
algo = "ed25519"

[signature."esp"]
domain = "esp.test"
policy = "POLICY"
"""


@pytest.mark.parametrize("policy", ["OnlyIfMissingDomainBlock", "Always"])
async def test_dkim_sign_signs_per_domain_block_and_additional_signature_policy(
    load_policy: Load,
    files: Callable[..., Path],
    keys: dict[str, Key],
    tmp_path: Path,
    policy: str,
) -> None:
    files(dkim_data__toml=DKIM_DATA.replace("DIR", str(tmp_path)).replace("POLICY", policy))
    _, lua = await load_policy(DKIM_POLICY)
    extra = [b"esp.test"] if policy == "Always" else []
    for sender, expected in [
        ("x@a.test", [b"a.test"]),
        ("x@sub.a.test", [b"sub.a.test"]),
        ("x@b.test", [b"b.test"]),
        ("x@other.test", []),
    ]:
        msg = Message(sender, "b@dest.test", body(sender))
        await lua.call_event("smtp_server_message_received", msg, {})
        # the last signature added is the topmost header: dkimpy's index 0
        found = signatures(msg.data, records(keys))
        want = expected + extra if expected else [b"esp.test"]
        assert sorted(found) == sorted(want), (sender, found)


VAULT_DKIM_DATA = """
[base]
vault_mount = "secret"
selector = "s1"
headers = ["From", "To", "Subject"]
additional_signatures = ["esp"]

[domain."a.test"]
[domain."b.test"]
selector = "ed"
algo = "ed25519"
filename = "custom/b-key"

[signature."esp"]
domain = "esp.test"
policy = "Always"
"""


async def test_dkim_sign_with_vault_mount_reads_each_key_once_from_vault(
    load_policy: Load,
    files: Callable[..., Path],
    keys: dict[str, Key],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files(dkim_data__toml=VAULT_DKIM_DATA)
    async with vault_server() as vault:
        # vault_path: the block's filename, else dkim/<domain>/<selector> (KumoMTA's shape).
        vault.put("dkim/a.test/s1", key=keys["a.test"].path.read_text())
        vault.put("custom/b-key", key=keys["b.test"].path.read_text())
        vault.put("dkim/esp.test/s1", key=keys["esp.test"].path.read_text())
        monkeypatch.setenv("VAULT_ADDR", vault.address)
        monkeypatch.setenv("VAULT_TOKEN", vault.token)
        _, lua = await load_policy(DKIM_POLICY)
        assert vault.requests == []  # nothing is read before a message needs it
        for sender, expected in [
            ("x@a.test", [b"a.test", b"esp.test"]),
            ("x@b.test", [b"b.test", b"esp.test"]),
            ("y@a.test", [b"a.test", b"esp.test"]),
        ]:
            msg = Message(sender, "b@dest.test", body(sender))
            await lua.call_event("smtp_server_message_received", msg, {})
            assert sorted(signatures(msg.data, records(keys))) == expected, sender
    assert sorted(path for path, _ in vault.requests) == [
        "/v1/secret/data/custom/b-key",
        "/v1/secret/data/dkim/a.test/s1",
        "/v1/secret/data/dkim/esp.test/s1",
    ]


async def test_dkim_sign_rejects_a_message_without_from(
    load_policy: Load, files: Callable[..., Path], keys: dict[str, Key], tmp_path: Path
) -> None:
    files(dkim_data__toml=DKIM_DATA.replace("DIR", str(tmp_path)).replace("POLICY", "Always"))
    _, lua = await load_policy(DKIM_POLICY)
    msg = Message("x@a.test", "b@dest.test", b"Subject: no from\r\n\r\nbody\r\n")
    with pytest.raises(Rejection) as info:
        await lua.call_event("smtp_server_message_received", msg, {})
    assert info.value.code == 552 and "From header" in info.value.message


async def test_queue_apply_imports_the_scheduling_header_and_removes_it(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(queues__toml='scheduling_header = "X-Schedule"\n' + QUEUES)
    _, lua = await load_policy(QUEUE_POLICY)
    data = (b"From: a@x.test\r\nX-Schedule: {\"first_attempt\": \"2099-01-01T00:00:00Z\"}"
            b"\r\n\r\nhi\r\n")  # fmt: skip
    msg = Message("a@x.test", "b@gmail.test", data)
    await lua.call_event("smtp_server_message_received", msg, {})
    assert b"X-Schedule" not in msg.data
    assert msg.due is not None and msg.due > 4_000_000_000  # 2099, as the header asked


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ('[domain."b.test"]', '[domain."c.test"]'),
            r'domain."c.test": cannot make a signer .*No such file',
        ),
        (('algo = "ed25519"', 'algo = "rsa"'), r'domain."b.test".algo: expected \'sha256\''),
        (('policy = "POLICY"', 'policy = "Sometimes"'), r"signature.esp.policy: expected"),
        (
            ('additional_signatures = ["esp"]', 'additional_signatures = ["other"]'),
            r"base.additional_signatures: names signature 'other'",
        ),
        (('selector = "s1"\nheaders', "headers"), r'domain."a.test".selector: missing'),
        (
            ('headers = ["From", "To", "Subject"]', 'headers = "From"'),
            r"base.headers: expected a list of strings",
        ),
        (("[base]", "[base]\nvault_mount = 3"), r"base.vault_mount: expected a string"),
        (("[base]", '[base]\nselecter = "x"'), r"base.selecter: unknown key"),
    ],
)
async def test_a_bad_dkim_data_file_is_refused_with_file_and_key(
    load_policy: Load,
    files: Callable[..., Path],
    keys: dict[str, Key],
    tmp_path: Path,
    edit: tuple[str, str],
    expected: str,
) -> None:
    text = DKIM_DATA.replace(*edit).replace("POLICY", "Always").replace("DIR", str(tmp_path))
    files(dkim_data__toml=text)
    with pytest.raises(LuaPolicyError, match=expected) as info:
        await load_policy(DKIM_POLICY)
    assert f"{tmp_path}/dkim_data.toml" in str(info.value)


QUEUE_POLICY = """
local kumo = require 'kumo'
local queue_module = require 'policy-extras.queue'
local helper = queue_module:setup { 'DIR/queues.toml' }
kumo.on('smtp_server_message_received', function(msg) helper:apply(msg) end)
"""

QUEUES = """
tenant_header = "X-Tenant"
remove_tenant_header = true
campaign_header = "X-Campaign"
default_tenant = "free"

[tenant."free"]
egress_pool = "shared"
[tenant."vip"]
egress_pool = "dedicated"
max_age = "10 hours"
require_authz = ["alice"]

[queue.default]
max_age = "1 day"
retry_interval = "5m"
[queue."gmail.test"]
retry_interval = "17 mins"
routing_domain = "relay.test"
[queue."gmail.test"."vip"]
max_age = "2 hours"
[queue."gmail.test"."vip"."welcome"]
retry_interval = "1m"
"""


async def test_queue_config_resolves_default_domain_tenant_and_campaign_in_order(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(queues__toml=QUEUES)
    _, lua = await load_policy(QUEUE_POLICY)

    async def resolve(domain: str, tenant: str | None, campaign: str | None) -> object:
        return await lua.call_event("get_queue_config", domain, tenant, campaign, None)

    plain = await resolve("other.test", "free", None)
    assert (plain.max_age, plain.retry_interval, plain.egress_pool) == (86400, 300, "shared")
    gmail = await resolve("gmail.test", "vip", None)
    assert (gmail.max_age, gmail.retry_interval, gmail.egress_pool) == (7200, 1020, "dedicated")
    campaign = await resolve("gmail.test", "vip", "welcome")
    assert (campaign.max_age, campaign.retry_interval) == (7200, 60)
    tenant_only = await resolve("other.test", "vip", None)
    assert tenant_only.max_age == 36000
    assert await resolve("GMAIL.test", "vip", None) is gmail  # cached, case-insensitive


RESOLVE_POLICY = QUEUE_POLICY + """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  -- KumoMTA's shape: a plain table of options, changed, then made into the config.
  local params = helper:resolve_config(domain, tenant, campaign)
  params.max_age = '3 hours'
  assert(queue_module.is_queue_config_option('retry_interval', '5m'))
  assert(not queue_module.is_queue_config_option('retry_intervall', '5m'))
  return kumo.make_queue_config(params)
end)
"""


async def test_resolve_config_gives_a_plain_table_of_options_as_kumomta(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(queues__toml=QUEUES)
    policy = RESOLVE_POLICY.replace(
        "local helper = queue_module:setup { 'DIR/queues.toml' }",
        "local helper = queue_module:setup_with_options { file_names = { 'DIR/queues.toml' },"
        " skip_queue_config_hook = true }")
    _, lua = await load_policy(policy)
    config = await lua.call_event("get_queue_config", "gmail.test", "vip", None, None)
    assert (config.max_age, config.retry_interval, config.egress_pool) == (
        10800, 1020, "dedicated")


async def test_queue_apply_sets_tenant_campaign_routing_domain_and_checks_authz(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(queues__toml=QUEUES)
    _, lua = await load_policy(QUEUE_POLICY)
    data = b"From: a@x.test\r\nX-Tenant: vip\r\nX-Campaign: welcome\r\n\r\nhi\r\n"
    msg = Message("a@x.test", "b@gmail.test", data, meta={"authz_id": "alice"})
    await lua.call_event("smtp_server_message_received", msg, {})
    assert (msg.get_meta("tenant"), msg.get_meta("campaign")) == ("vip", "welcome")
    assert msg.get_meta("routing_domain") == "relay.test"
    assert b"X-Tenant" not in msg.data and b"X-Campaign" in msg.data
    default = Message("a@x.test", "b@other.test", b"From: a@x.test\r\n\r\nhi\r\n")
    await lua.call_event("smtp_server_message_received", default, {})
    assert default.get_meta("tenant") == "free"
    for meta, text in [
        ({}, "tenant 'vip' requires SMTP AUTH"),
        ({"authz_id": "bob"}, "authz_id 'bob' is not authorized"),
    ]:
        refused = Message("a@x.test", "b@gmail.test", data, meta=meta)
        with pytest.raises(Rejection, match=text):
            await lua.call_event("smtp_server_message_received", refused, {})
    unknown = Message("a@x.test", "b@gmail.test", b"X-Tenant: nobody\r\n\r\nhi\r\n")
    with pytest.raises(Rejection, match="tenant 'nobody' specified by 'X-Tenant' header"):
        await lua.call_event("smtp_server_message_received", unknown, {})


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ('max_age = "1 day"', 'max_age = "1 fortnight"'),
            r"queue.default: invalid value for 'max_age'",
        ),
        (('retry_interval = "5m"', 'retry_intervall = "5m"'), r"unknown key 'retry_intervall'"),
        (('default_tenant = "free"', "default_tenant = 5"), r"default_tenant: expected a string"),
        (
            ('tenant_header = "X-Tenant"', "scheduling_header = 5"),
            r"scheduling_header: expected a string",
        ),
        (
            ('require_authz = ["alice"]', 'overall_max_message_rate = "ten/s"'),
            r"tenant.vip.overall_max_message_rate: invalid throttle spec 'ten/s'",
        ),
        (
            ('require_authz = ["alice"]', 'overall_max_message_rate = 10'),
            r"tenant.vip.overall_max_message_rate: expected a rate such as '100/s', got 10",
        ),
        (
            ('retry_interval = "1m"', 'overall_max_message_rate = "10/s"'),
            r'queue."gmail.test".vip.welcome.overall_max_message_rate: overall_max_message_rate '
            r"applies only in a \[tenant",
        ),
        (
            ('require_authz = ["alice"]', '[tenant.vip.campaigns.promo]\nmax_age = "1h"'),
            r"tenant.vip.campaigns.promo.max_age: unknown key: a tenant's campaign section "
            r"takes only overall_max_message_rate",
        ),
        (
            ('require_authz = ["alice"]', 'require_authz = "alice"'),
            r"tenant.vip.require_authz: expected a list of strings",
        ),
    ],
)
async def test_a_bad_queues_file_is_refused_with_file_and_key(
    load_policy: Load,
    files: Callable[..., Path],
    tmp_path: Path,
    edit: tuple[str, str],
    expected: str,
) -> None:
    files(queues__toml=QUEUES.replace(*edit))
    with pytest.raises(LuaPolicyError, match=expected) as info:
        await load_policy(QUEUE_POLICY)
    assert f"{tmp_path}/queues.toml" in str(info.value)
