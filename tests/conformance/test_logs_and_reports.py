"""Issue 6, end to end: the unchanged reference policy logs every outcome like KumoMTA.

One scenario drives a real deployment of the reference policy (only its literals patched,
see reference_policy.py) on loopback: a test DNS server, the recording SMTP sink (its magic
recipients ``tempfail``/``tempfail-once`` answer 451, ``permfail`` 550 5.1.1) and SMTP
clients bound to 127.0.0.1 (a relay host) or 127.0.0.5 (untrusted). It sends

* four messages to gmail.com: delivered, tempfail, tempfail-once, permfail;
* an RFC 3464 DSN (two failed recipients, one delayed) to ``bounce.examplecorp.com``
  (``log_oob = true``, i.e. LogThenRelay) from the untrusted peer;
* an RFC 5965 ARF report to ``fbl.examplecorp.com`` (``log_arf = true``);
* a plain message to ``bounce.examplecorp.com`` from the untrusted peer (550 at DATA);
* the same DSN without ``X-Tenant`` (see below);

then reads the records back from ``log_dir`` with :func:`iter_records` and with
``kumocore logs cat``. A variant runs the same traffic through a wrapper that also points
the example ``kumocore-webhook-sink`` at an aiohttp receiver, and compares what it got with
the local logs. Each scenario runs once per module (a sync fixture around ``asyncio.run``);
the tests only read its results.

About ``X-Tenant``: the reference policy's ``get_queue_config`` does
``merge_into(TENANT_PARAMS[tenant], params)``, which raises for a message without a known
tenant. LogThenRelay *queues* the report, so its queue configuration is resolved before
the 250 — KumoMTA resolves every message's queue at the end of DATA before it spools or
logs anything, and answers ``421 4.3.0`` when that fails; kumocore does the same. Real
reporters never send ``X-Tenant``, so with this policy real DSNs and ARF reports would be
deferred by the reporter forever: an operator should use ``log_oob = 'LogThenDrop'`` (the
record is all that matters) or assign a tenant to reports in
``smtp_server_message_received``. The scenario therefore adds ``X-Tenant: TenantOne`` to
the reports it wants accepted, and sends one tenant-less DSN to pin the 421 down.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kumocore.logs.reader import iter_records
from tests.conformance.reference_policy import (
    ReferencePolicy,
    bounce_rules_path,
    dkim_record,
    missing_requirements,
    prepare_reference_policy,
    seed_path,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(seed_path() is None, reason="../shared/seed/example-policy.lua is absent"),
]

DATA = Path(__file__).parent / "data"
DSN_FILE = DATA / "dsn_two_failed_one_delayed.eml"
ARF_FILE = Path(__file__).parents[1] / "core" / "reports" / "data" / "yahoo_arf.eml"
KUMOCORE = Path(sys.executable).with_name("kumocore")

RELAY_CLIENT = "127.0.0.1"  # in the policy's relay_hosts
UNTRUSTED_CLIENT = "127.0.0.5"  # not in relay_hosts: may only send to relay_to/log_* domains
CLIENT_EHLO = "client.test"
REPORTER_EHLO = "mail.example.net"
BOUNCE_ADDRESS = "bounces+a1b2c3@bounce.examplecorp.com"
TENANTLESS_BOUNCE_ADDRESS = "bounces+notenant@bounce.examplecorp.com"
GMAIL_SITE = "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com"
GMAIL_MX_HOSTS = {"gmail-smtp-in.l.google.com"} | {
    f"alt{n}.gmail-smtp-in.l.google.com" for n in range(1, 5)}
TENANT_ONE_SOURCES = {"ip-3": "127.0.10.3", "ip-4": "127.0.10.4", "ip-5": "127.0.10.5"}

#: KumoMTA's JsonLogRecord keys, in order; the optional ones follow only when known.
RECORD_KEYS = [
    "type", "id", "sender", "recipient", "queue", "site", "size", "response", "peer_address",
    "timestamp", "event_time", "created", "created_time", "num_attempts",
    "bounce_classification", "egress_pool", "egress_source", "source_address",
    "feedback_report", "meta", "headers", "delivery_protocol", "reception_protocol", "nodeid",
]
OPTIONAL_KEYS = ["tls_cipher", "tls_protocol_version", "tls_peer_subject_name",
                 "provider_name", "session_id"]
#: KumoMTA's ARFReport fields, in order.
FEEDBACK_KEYS = [
    "feedback_type", "user_agent", "version", "arrival_date", "incidents",
    "original_envelope_id", "original_mail_from", "reporting_mta", "source_ip",
    "authentication_results", "original_rcpto_to", "reported_domain", "reported_uri",
    "extensions", "original_message", "supplemental_trace",
]
RFC3339_NS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# --------------------------------------------------------------------------- the scenario
@dataclass
class Exchange:
    """One SMTP transaction: the RCPT reply and the final reply to DATA (if it got there)."""

    rcpt: tuple[int, str]
    data: tuple[int, str] | None

    @property
    def ids(self) -> list[str]:
        if self.data is None or self.data[0] != 250:
            return []
        return self.data[1].removeprefix("OK ids=").split()

    @property
    def id(self) -> str:
        (message_id,) = self.ids
        return message_id


@dataclass
class Scenario:
    ref: ReferencePolicy
    sent: dict[str, Exchange] = field(default_factory=dict)
    relayed_to: list[str] = field(default_factory=list)  # what the MX sink accepted
    records: list[dict[str, Any]] = field(default_factory=list)
    webhook: list[dict[str, Any]] | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]

    def one(self, kind: str, label: str) -> dict[str, Any]:
        (record,) = [r for r in self.of_type(kind) if r["id"] == self.sent[label].id]
        return record


def smtp_send(port: int, *, sender: str, recipient: str, data: bytes, source: str,
              ehlo: str) -> Exchange:
    """One transaction in its own session (blocking: run it in a thread)."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=ehlo, source_address=(source, 0),
                      timeout=30) as client:
        client.ehlo()
        client.mail(sender)
        code, text = client.rcpt(recipient)
        rcpt = (code, text.decode())
        if code != 250:
            return Exchange(rcpt, None)
        code, text = client.data(data)
        return Exchange(rcpt, (code, text.decode()))


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def plain_message(recipient: str, *, tenant: str | None = "TenantOne") -> bytes:
    tenant_header = f"X-Tenant: {tenant}\r\n" if tenant else ""
    return (f"From: Sender <sender@examplecorp.com>\r\nTo: <{recipient}>\r\n"
            f"Subject: hello\r\n{tenant_header}\r\nbody\r\n").encode()


def report(path: Path, *, tenant: bool) -> bytes:
    """A report as its reporter sent it; with ``tenant``, ``X-Tenant: TenantOne`` on top
    (the reference policy cannot queue a message without a tenant, see the module doc)."""
    return (b"X-Tenant: TenantOne\r\n" if tenant else b"") + crlf(path.read_bytes())


async def send_traffic(scenario: Scenario) -> None:
    port = scenario.ref.smtp_port

    async def send(label: str, **kwargs: Any) -> None:
        scenario.sent[label] = await asyncio.to_thread(smtp_send, port, **kwargs)

    for user in ("someone", "tempfail", "tempfail-once", "permfail"):
        recipient = f"{user}@gmail.com"
        await send(user, sender="sender@examplecorp.com", recipient=recipient,
                   data=plain_message(recipient), source=RELAY_CLIENT, ehlo=CLIENT_EHLO)
    await send("dsn", sender="", recipient=BOUNCE_ADDRESS, data=report(DSN_FILE, tenant=True),
               source=UNTRUSTED_CLIENT, ehlo=REPORTER_EHLO)
    await send("arf", sender="", recipient="fbl@fbl.examplecorp.com",
               data=report(ARF_FILE, tenant=True), source=UNTRUSTED_CLIENT,
               ehlo="mta1030.mail.ne1.yahoo.com")
    await send("plain", sender="someone@example.net", recipient="x@bounce.examplecorp.com",
               data=plain_message("x@bounce.examplecorp.com"), source=UNTRUSTED_CLIENT,
               ehlo=REPORTER_EHLO)
    await send("dsn-without-tenant", sender="", recipient=TENANTLESS_BOUNCE_ADDRESS,
               data=report(DSN_FILE, tenant=False).replace(
                   BOUNCE_ADDRESS.encode(), TENANTLESS_BOUNCE_ADDRESS.encode()),
               source=UNTRUSTED_CLIENT, ehlo=REPORTER_EHLO)


def type_counts(log_dir: Path) -> collections.Counter[str]:
    if not log_dir.exists():
        return collections.Counter()
    return collections.Counter(r["type"] for r in iter_records(log_dir))


async def wait_for_types(log_dir: Path, want: dict[str, int], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        have = type_counts(log_dir)
        if all(have[kind] >= count for kind, count in want.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"log_dir has {dict(have)}, expected at least {want}")
        await asyncio.sleep(0.1)


WEBHOOK_WRAPPER = """\
-- The reference policy, plus the example webhook sink next to its local logs.
local kumo = require 'kumo'
local configure_local_logs = kumo.configure_local_logs
kumo.configure_local_logs = function(params)
  configure_local_logs(params)
  kumo.configure_webhook_sink {{ url = '{url}', batch_size = 50, retry_interval = 0.1 }}
end
dofile '{wrapper}'
"""


async def run_scenario(directory: Path, *, with_webhook: bool) -> Scenario:
    from aiohttp import web

    from bench.common.dns_server import TestDnsServer, reference_zones
    from bench.common.sink import RecordingSink
    from kumocore.node.runtime import Runtime
    from kumocore.node.server import Server

    zones = reference_zones(mx_address="127.0.0.1")
    for domain in ("bounce.examplecorp.com", "fbl.examplecorp.com"):  # where reports relay to
        zones[domain] = {"MX": [(10, "mx.examplecorp.com")]}
    posted: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        posted.extend(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        with TestDnsServer(zones) as dns:
            ref = prepare_reference_policy(directory, dns_address=dns.address,
                                           bounce_rules=bounce_rules_path(directory))
            name, value = dkim_record(ref)
            dns.set_records(name, "TXT", [value])
            policy = ref.wrapper
            if with_webhook:
                policy = directory / "webhook-wrapper.lua"
                policy.write_text(WEBHOOK_WRAPPER.format(url=url,
                                                         wrapper=ref.wrapper.as_posix()))
            scenario = Scenario(ref)
            sink = await RecordingSink(port=ref.sink_port).start()
            runtime = Runtime()
            await runtime.load(policy)
            server = Server(runtime)
            await server.start()
            try:
                await send_traffic(scenario)
                # someone@, the DSN and the ARF report (LogThenRelay) reach the MX sink.
                await sink.wait_for(3, timeout=20)
                await wait_for_types(ref.log_dir, {"Delivery": 3, "Bounce": 1,
                                                   "TransientFailure": 2, "Expiration": 2})
            finally:
                await server.stop(timeout=5)  # drains and closes every sink
                await sink.stop()
            scenario.relayed_to = [m.recipient for m in sink.messages]
            scenario.records = list(iter_records(ref.log_dir))
            if with_webhook:
                scenario.webhook = posted
            return scenario
    finally:
        await runner.cleanup()


def scenario_fixture(tmp_path_factory: pytest.TempPathFactory, name: str,
                     with_webhook: bool) -> Scenario:
    missing = missing_requirements()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    directory = tmp_path_factory.mktemp(name)
    return asyncio.run(run_scenario(directory, with_webhook=with_webhook))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return scenario_fixture(tmp_path_factory, "reference", with_webhook=False)


@pytest.fixture(scope="module")
def webhook_scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    from kumocore.node.runtime import Runtime

    if "configure_webhook_sink" not in set(Runtime().kumo.names()):
        pytest.skip("kumocore-webhook-sink (docs/examples) is not installed")
    return scenario_fixture(tmp_path_factory, "webhook", with_webhook=True)


# --------------------------------------------------------------------------- helpers
def check_shape(record: dict[str, Any]) -> None:
    """KumoMTA's keys in KumoMTA's order, with KumoMTA's value types."""
    keys = list(record)
    assert keys[: len(RECORD_KEYS)] == RECORD_KEYS, keys
    extra = keys[len(RECORD_KEYS):]
    assert extra == [k for k in OPTIONAL_KEYS if k in extra], extra
    assert isinstance(record["timestamp"], int) and isinstance(record["created"], int)
    assert RFC3339_NS.match(record["event_time"]) and RFC3339_NS.match(record["created_time"])
    assert record["created"] <= record["timestamp"] or record["type"] == "OOB"
    assert set(record["response"]) == {"code", "enhanced_code", "content", "command"}
    assert record["peer_address"] is None or set(record["peer_address"]) == {"name", "addr"}
    assert isinstance(record["num_attempts"], int) and isinstance(record["size"], int)
    assert UUID.match(record["nodeid"])
    assert record["meta"] == {} and record["headers"] == {}  # the policy selects none


def enhanced(record: dict[str, Any]) -> str | None:
    code = record["response"]["enhanced_code"]
    return None if code is None else f"{code['class']}.{code['subject']}.{code['detail']}"


def in_tenant_one_pool(record: dict[str, Any], site: str) -> None:
    """A delivery attempt from the TenantOne pool to ``site``."""
    assert record["egress_pool"] == "TenantOne"
    assert record["egress_source"] in TENANT_ONE_SOURCES
    assert record["site"] == f"{record['egress_source']}->{site}@smtp_client"
    assert record["delivery_protocol"] == "ESMTP"
    assert record["reception_protocol"] == "ESMTP"


# --------------------------------------------------------------------------- 1. outcomes
def test_every_record_has_kumomtas_fields_in_kumomtas_order(scenario: Scenario) -> None:
    types = collections.Counter(r["type"] for r in scenario.records)
    assert {"Reception", "Delivery", "TransientFailure", "Bounce", "Expiration", "OOB",
            "Feedback", "Rejection"} <= set(types), types
    for record in scenario.records:
        check_shape(record)
    ids = {r["id"] for r in scenario.records if r["type"] != "Rejection"}
    assert all(HEX32.match(i) for i in ids)
    assert len({r["nodeid"] for r in scenario.records}) == 1


def test_every_accepted_message_has_a_reception_record(scenario: Scenario) -> None:
    for label in ("someone", "tempfail", "tempfail-once", "permfail", "dsn"):
        record = scenario.one("Reception", label)
        sent_to = {"dsn": BOUNCE_ADDRESS}.get(label, f"{label}@gmail.com")
        assert record["recipient"] == sent_to
        assert record["site"] == "" and record["num_attempts"] == 0
        # KumoMTA's: 250, no text, no command (the client itself was told "OK ids=...").
        assert record["response"] == {"code": 250, "enhanced_code": None,
                                      "content": "", "command": None}
        assert record["reception_protocol"] == "ESMTP"
        assert record["egress_pool"] is None and record["egress_source"] is None
        assert record["bounce_classification"] == "Uncategorized"  # receptions never are
    gmail = scenario.one("Reception", "someone")
    assert gmail["queue"] == "TenantOne@gmail.com"
    assert gmail["sender"] == "sender@examplecorp.com"
    assert gmail["peer_address"]["name"] == CLIENT_EHLO
    assert scenario.one("Reception", "dsn")["queue"] == "TenantOne@bounce.examplecorp.com"


def test_delivery_record_names_queue_site_pool_source_and_peer(scenario: Scenario) -> None:
    record = scenario.one("Delivery", "someone")
    assert record["queue"] == "TenantOne@gmail.com"
    in_tenant_one_pool(record, GMAIL_SITE)
    assert record["response"] == {"code": 250, "content": "OK queued", "command": ".",
                                  "enhanced_code": {"class": 2, "subject": 0, "detail": 0}}
    assert record["peer_address"]["name"].rstrip(".") in GMAIL_MX_HOSTS
    assert record["peer_address"]["addr"] == "127.0.0.1"
    source_ip = TENANT_ONE_SOURCES[record["egress_source"]]
    assert record["source_address"]["address"].startswith(f"{source_ip}:")
    assert record["num_attempts"] == 0
    assert record["size"] > 0
    assert record["bounce_classification"] == "Uncategorized"


def test_451_from_the_sink_is_a_transient_failure_then_expires_under_max_age(
        scenario: Scenario) -> None:
    # TenantOne's max_age is 5 minutes and the first retry is ~20 minutes away, so the
    # message expires right after its first TransientFailure (KumoMTA does the same).
    for label, content in (("tempfail", "tempfail requested"),
                           ("tempfail-once", "try again later")):
        failure = scenario.one("TransientFailure", label)
        assert failure["queue"] == "TenantOne@gmail.com"
        in_tenant_one_pool(failure, GMAIL_SITE)
        assert failure["response"] == {"code": 451, "content": content, "command": "RCPT TO",
                                       "enhanced_code": {"class": 4, "subject": 3,
                                                         "detail": 0}}
        assert failure["peer_address"]["addr"] == "127.0.0.1"
        assert failure["bounce_classification"] == "TransientFailure"
        expired = scenario.one("Expiration", label)
        assert expired["response"]["code"] == 551 and enhanced(expired) == "5.4.7"
        assert expired["response"]["content"].startswith("Next delivery time would be ")
        assert expired["response"]["content"].endswith(
            " after creation, which exceeds max_age=5m")
        assert expired["bounce_classification"] == "MessageExpired"
        assert expired["num_attempts"] == 1


def test_550_from_the_sink_is_a_bounce(scenario: Scenario) -> None:
    record = scenario.one("Bounce", "permfail")
    assert record["queue"] == "TenantOne@gmail.com"
    in_tenant_one_pool(record, GMAIL_SITE)
    assert record["response"] == {"code": 550, "content": "user unknown (permfail requested)",
                                  "command": "RCPT TO",
                                  "enhanced_code": {"class": 5, "subject": 1, "detail": 1}}
    assert record["peer_address"]["name"].rstrip(".") in GMAIL_MX_HOSTS
    assert record["num_attempts"] == 0


def test_kumocore_logs_cat_prints_the_bounce_records_as_stored(scenario: Scenario) -> None:
    if not KUMOCORE.exists():
        pytest.skip(f"no kumocore script beside {sys.executable}")
    out = subprocess.run([str(KUMOCORE), "logs", "cat", str(scenario.ref.log_dir),
                          "--type", "Bounce"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    printed = [json.loads(line) for line in out.splitlines()]
    assert printed == scenario.of_type("Bounce")
    assert [list(r) for r in printed] == [list(r) for r in scenario.of_type("Bounce")]
    assert [r["recipient"] for r in printed] == ["permfail@gmail.com"]


# --------------------------------------------------------------------------- 2. classification
def test_the_policy_classifies_bounces_with_the_plugins_default_rules(
        scenario: Scenario) -> None:
    from kumocore_bounce_classifier import BounceClassifier, default_rules_path, load_rules

    # The only change to the policy's classifier configuration is its rules path.
    assert scenario.ref.replacements["'/opt/kumomta/etc/bounce_rules.toml'"] == (
        f"'{default_rules_path()}'")
    record = scenario.one("Bounce", "permfail")
    line = "550 5.1.1 user unknown (permfail requested)"
    rule = BounceClassifier(load_rules(default_rules_path())).matching_rule(line)
    assert rule is not None and rule.class_name == "InvalidRecipient", rule
    assert record["bounce_classification"] == "InvalidRecipient"


# --------------------------------------------------------------------------- 3. OOB and ARF
def test_dsn_from_an_untrusted_peer_is_accepted_and_relayed(scenario: Scenario) -> None:
    dsn = scenario.sent["dsn"]
    assert dsn.rcpt[0] == 250 and dsn.data is not None and dsn.data[0] == 250
    assert BOUNCE_ADDRESS in scenario.relayed_to  # log_oob = true means LogThenRelay
    assert scenario.one("Delivery", "dsn")["queue"] == "TenantOne@bounce.examplecorp.com"


def test_dsn_gives_one_oob_record_per_failed_recipient(scenario: Scenario) -> None:
    oob = {r["recipient"]: r for r in scenario.of_type("OOB")
           if r["id"] == scenario.sent["dsn"].id}
    # The delayed recipient (sales@) has none; Original-Recipient wins over Final-Recipient.
    assert set(oob) == {"nosuchuser@example.org", "Info@Example.net"}
    for record in oob.values():
        assert record["sender"] == BOUNCE_ADDRESS  # the original message's return path
        assert record["queue"] == "TenantOne@bounce.examplecorp.com"
        assert record["site"] == "" and record["size"] == 0 and record["num_attempts"] == 0
        assert record["peer_address"] == {"name": "mail.example.net", "addr": UNTRUSTED_CLIENT}
        assert record["response"]["command"] is None
        assert record["egress_pool"] is None and record["egress_source"] is None
        assert record["source_address"] is None and record["feedback_report"] is None
        assert record["delivery_protocol"] is None
        assert record["reception_protocol"] == "ESMTP"
    unknown, full = oob["nosuchuser@example.org"], oob["Info@Example.net"]
    assert unknown["response"]["code"] == 550 and enhanced(unknown) == "5.1.1"
    assert unknown["response"]["content"].endswith("rejected: User unknown")
    # timestamp = Last-Attempt-Date (Tue, 14 May 2024 18:12:44 +0200) ...
    assert unknown["timestamp"] == 1715703164
    assert unknown["event_time"] == "2024-05-14T16:12:44.000000000Z"
    assert full["response"]["code"] == 552 and enhanced(full) == "5.2.2"
    assert full["response"]["content"].endswith("Mailbox full")
    # ... or the time the report arrived when it has none.
    assert abs(full["timestamp"] - scenario.one("Reception", "dsn")["timestamp"]) <= 1


def test_arf_report_becomes_a_feedback_record(scenario: Scenario) -> None:
    arf = scenario.sent["arf"]
    assert arf.rcpt[0] == 250 and arf.data is not None and arf.data[0] == 250
    assert "fbl@fbl.examplecorp.com" in scenario.relayed_to  # LogThenRelay
    record = scenario.one("Feedback", "arf")
    assert record["sender"] == "" and record["recipient"] == "fbl@fbl.examplecorp.com"
    assert record["queue"] == "TenantOne@fbl.examplecorp.com" and record["site"] == ""
    assert record["peer_address"] == {"name": "mta1030.mail.ne1.yahoo.com",
                                      "addr": UNTRUSTED_CLIENT}
    assert record["response"]["code"] == 250
    report_ = record["feedback_report"]
    assert list(report_) == FEEDBACK_KEYS
    assert report_["feedback_type"] == "abuse"
    assert report_["user_agent"] == "Yahoo!-Mail-Feedback/2.0" and report_["version"] == "1"
    assert report_["arrival_date"] == "2024-05-16T07:58:12Z" and report_["incidents"] == 1
    assert report_["original_mail_from"] == "bounces+77aa@bounce.examplecorp.com"
    assert report_["original_rcpto_to"] == ["someone@yahoo.com"]
    assert report_["reporting_mta"] == {"mta_type": "dns", "name": "mta1030.mail.ne1.yahoo.com"}
    assert report_["source_ip"] == "198.51.100.10"
    assert report_["reported_domain"] == ["examplecorp.com", "bounce.examplecorp.com"]
    assert report_["reported_uri"] == ["https://click.examplecorp.com/u/77aa"]
    assert report_["extensions"] == {"x-yahoo-cfl-id": ["5b3c1d2e-93851"]}
    assert "Subject: Spring sale" in report_["original_message"]
    # Decoded from the X-KumoRef header of the reported message.
    assert report_["supplemental_trace"] == {"recipient": "someone@yahoo.com",
                                             "tenant": "examplecorp",
                                             "campaign": "spring-sale"}


def test_non_report_to_the_bounce_domain_is_refused_at_end_of_data(scenario: Scenario) -> None:
    plain = scenario.sent["plain"]
    assert plain.rcpt[0] == 250  # RCPT is accepted: the domain logs reports
    assert plain.data == (550, "5.7.1 relaying not permitted")
    (rejection,) = [r for r in scenario.of_type("Rejection") if r["response"]["code"] == 550]
    assert enhanced(rejection) == "5.7.1"
    assert rejection["response"]["content"] == "relaying not permitted"
    assert rejection["peer_address"]["addr"] == UNTRUSTED_CLIENT
    assert "x@bounce.examplecorp.com" not in scenario.relayed_to


def test_report_without_tenant_is_deferred_by_the_reference_policy(scenario: Scenario) -> None:
    exchange = scenario.sent["dsn-without-tenant"]
    assert exchange.rcpt[0] == 250
    assert exchange.data is not None and exchange.data[0] == 421
    assert exchange.data[1].startswith("4.3.0 ")
    assert TENANTLESS_BOUNCE_ADDRESS not in scenario.relayed_to


# --------------------------------------------------------------------------- 4. third-party sink
def test_webhook_sink_receives_the_same_records_as_local_logs(
        webhook_scenario: Scenario) -> None:
    assert webhook_scenario.webhook is not None
    local = webhook_scenario.records
    posted = webhook_scenario.webhook
    assert {(r["type"], r["id"]) for r in posted} == {(r["type"], r["id"]) for r in local}
    # Neither sink selects meta or headers, so the records are identical, in the same order.
    assert len(posted) == len(local)
    assert [json.dumps(r) for r in posted] == [json.dumps(r) for r in local]
    assert {"Delivery", "Bounce", "TransientFailure", "Expiration", "OOB", "Feedback",
            "Rejection"} <= {r["type"] for r in posted}


# --------------------------------------------------------------------------- known bugs
def test_reception_peer_address_is_the_clients_ip(scenario: Scenario) -> None:
    record = scenario.one("Reception", "someone")
    assert record["peer_address"] == {"name": CLIENT_EHLO, "addr": RELAY_CLIENT}


def test_first_transient_failure_counts_no_earlier_attempt(scenario: Scenario) -> None:
    assert scenario.one("TransientFailure", "tempfail")["num_attempts"] == 0


def test_oob_records_are_classified(scenario: Scenario) -> None:
    oob = {r["recipient"]: r["bounce_classification"] for r in scenario.of_type("OOB")
           if r["id"] == scenario.sent["dsn"].id}
    assert oob == {"nosuchuser@example.org": "InvalidRecipient",
                   "Info@Example.net": "QuotaIssues"}


def test_rejection_records_are_classified(scenario: Scenario) -> None:
    (rejection,) = [r for r in scenario.of_type("Rejection") if r["response"]["code"] == 550]
    assert rejection["bounce_classification"] == "RelayDenied"


def test_relayed_arf_report_has_a_feedback_record_instead_of_a_reception(
        scenario: Scenario) -> None:
    arf_id = scenario.sent["arf"].id
    assert [r["type"] for r in scenario.records
            if r["id"] == arf_id and r["type"] in ("Reception", "Feedback")] == ["Feedback"]


def test_refused_report_logs_no_oob_records(scenario: Scenario) -> None:
    assert [r for r in scenario.of_type("OOB")
            if r["sender"] == TENANTLESS_BOUNCE_ADDRESS] == []
