"""``kumocore explain``: a dry run of one message through KumoMTA's example server policy.

The real ``kumocore`` script runs on the reference policy (literals patched, as in
tests/conformance) with a real DNS server serving the providers' MX records.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer, reference_zones
from tests.conformance.reference_policy import (
    ReferencePolicy,
    bounce_rules_path,
    dkim_record,
    missing_requirements,
    prepare_reference_policy,
    seed_path,
)

pytestmark = pytest.mark.skipif(
    seed_path() is None, reason="../shared/seed is not beside the checkout")

KUMOCORE = str(Path(sys.executable).with_name("kumocore"))
GMAIL_SITE = "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferencePolicy]:
    if missing_requirements():
        pytest.skip(f"needs {missing_requirements()}")
    directory = tmp_path_factory.mktemp("explain")
    with TestDnsServer(reference_zones()) as dns:
        ref = prepare_reference_policy(directory, dns_address=dns.address,
                                       bounce_rules=bounce_rules_path(directory))  # fmt: skip
        name, value = dkim_record(ref)
        dns.set_records(name, "TXT", [value])
        yield ref


def _explain(ref: ReferencePolicy, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUMOCORE, "explain", "--policy", str(ref.wrapper), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _steps(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in json.loads(result.stdout)["steps"]}


def test_explain_shows_queue_pool_sources_site_path_and_dkim_for_a_known_tenant(
    reference: ReferencePolicy,
) -> None:
    result = _explain(reference, "--from", "alice@examplecorp.com", "--to", "bob@gmail.com",
                      "--header", "X-Tenant: TenantOne", "--json")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    steps = _steps(result)
    assert steps["smtp_server_message_received"]["answer"]["meta"] == {"tenant": "TenantOne"}
    assert steps["smtp_server_message_received"]["answer"]["dkim_signed"] is True
    queue = steps["get_queue_config"]["answer"]
    assert queue["queue"] == "TenantOne@gmail.com"
    assert queue["egress_pool"] == "TenantOne"
    assert queue["config"]["max_age"] == "5m"  # the tenant's five minutes, as KumoMTA writes it
    pool = steps["get_egress_pool"]["answer"]["sources"]
    assert [s["name"] for s in pool] == ["ip-3", "ip-4", "ip-5"]
    assert steps["MX lookup and site name"]["answer"]["site_name"] == GMAIL_SITE
    source = steps["get_egress_source ip-3"]["answer"]
    assert source["source_address"] == "127.0.10.3"
    path = steps[f"get_egress_path_config ip-3 -> {GMAIL_SITE}"]["answer"]
    assert path["config"]["connection_limit"] == {"limit": 3, "force_local": False}  # gmail shaping
    assert path["settings"]["max_deliveries_per_connection"] == 50


def test_explain_reports_the_handler_error_with_file_and_line_and_exits_1(
    reference: ReferencePolicy,
) -> None:
    result = _explain(reference, "--from", "alice@examplecorp.com", "--to", "bob@gmail.com")
    assert result.returncode == 1
    assert "FAIL  get_queue_config" in result.stdout
    assert f"{reference.policy}:" in result.stdout  # the seed's merge_into(nil) line
    assert "1 problem" in result.stdout


def test_explain_shows_relaying_refused_for_an_untrusted_peer(reference: ReferencePolicy) -> None:
    result = _explain(reference, "--from", "x@elsewhere.example", "--to", "bob@gmail.com",
                      "--header", "X-Tenant: TenantOne", "--peer", "127.0.0.5",
                      "--json")  # fmt: skip
    relay = _steps(result)["smtp_server_mail_rcpt_to (relay decision)"]["answer"]
    assert relay["accepted"] is False
    assert relay["reply"] == "550 5.7.1 relaying not permitted"


def test_explain_refuses_a_malformed_header_argument(reference: ReferencePolicy) -> None:
    result = _explain(reference, "--from", "a@b.example", "--to", "c@d.example",
                      "--header", "no colon here")  # fmt: skip
    assert result.returncode != 0
    assert "is not 'Name: value'" in result.stderr
