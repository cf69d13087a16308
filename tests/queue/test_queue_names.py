"""Queue names built from untrusted parts round-trip exactly, so operator rules by domain,
tenant or campaign reach every message (issue 14, finding 15)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kumocore.config import QueueConfig
from kumocore.mail.message import Message
from kumocore.mail.queue_name import QueueNameParts, parse_queue_name, queue_name_for
from kumocore.queue.admin import parse_rule

# Text rich in the separators and in the escape character itself.
_TEXT = st.text(alphabet=st.sampled_from("ab%:@!.-2534AF\u00e9 "), max_size=12) | st.text(
    max_size=12
)
_OPTIONAL = st.none() | _TEXT.filter(bool)


@given(domain=_TEXT, tenant=_OPTIONAL, campaign=_OPTIONAL, routing_domain=_OPTIONAL)
def test_parse_inverts_build_for_every_value(
    domain: str, tenant: str | None, campaign: str | None, routing_domain: str | None
) -> None:
    name = queue_name_for(domain, tenant, campaign, routing_domain)
    assert parse_queue_name(name) == QueueNameParts(campaign, tenant, domain, routing_domain)


@pytest.mark.parametrize(
    ("tenant", "campaign", "name"),
    [
        ("x@evil.com", None, "x%40evil.com@example.com"),
        ("a:b", None, "a%3Ab@example.com"),
        ("t", "spring:sale", "spring%3Asale:t@example.com"),
        ("a!b", "c@d", "c%40d:a%21b@example.com"),
        ("100%", None, "100%25@example.com"),
        ("acme", "spring", "spring:acme@example.com"),  # plain parts: KumoMTA's name
    ],
)
def test_separators_in_tenant_and_campaign_are_escaped(
    tenant: str, campaign: str | None, name: str
) -> None:
    assert queue_name_for("example.com", tenant, campaign) == name
    parts = parse_queue_name(name)
    assert (parts.tenant, parts.campaign, parts.domain) == (tenant, campaign, "example.com")


def test_hand_written_names_keep_percent_signs_that_are_not_our_escapes() -> None:
    assert parse_queue_name("t%41@example.com").tenant == "t%41"


@pytest.mark.parametrize("tenant", ["x@evil.com", "x@evil.com!other.net", "a:b@evil.com"])
async def test_suspension_on_a_domain_holds_a_message_whose_tenant_has_separators(
    make_bench: Any, tenant: str
) -> None:
    bench = await make_bench()
    rule = parse_rule({"domain": "example.com", "reason": "maintenance", "duration": "1h"})
    bench.queues.add_suspension(rule)
    message = Message("a@src.test", "held@example.com", b"Subject: t\r\n\r\nx\r\n",
                      meta={"tenant": tenant})
    assert bench.runtime.services.store is not None
    await bench.runtime.services.store.save(message)
    retry_soon = QueueConfig.from_options({"retry_interval": "1s", "max_retry_interval": "1s"})
    bench.queues.insert(message, message.queue_name(), retry_soon)
    # Deferred by the suspension (a TransientFailure, as in KumoMTA), not delivered.
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert record["id"] == message.id and "suspended: maintenance" in str(record["response"])
    assert bench.sink.messages == []
    assert bench.queues.cancel_suspension(rule.id)
    await bench.sink.wait_for(1)  # at its next retry


async def test_admin_bounce_by_tenant_matches_a_tenant_containing_an_at_sign(
    make_bench: Any,
) -> None:
    bench = await make_bench()
    bench.queues.apply_bounce_rule(
        parse_rule({"tenant": "x@evil.com", "reason": "abuse", "duration": "1h"})
    )
    message = Message("a@src.test", "r@example.com", b"Subject: t\r\n\r\nx\r\n",
                      meta={"tenant": "x@evil.com"})
    assert bench.runtime.services.store is not None
    await bench.runtime.services.store.save(message)
    bench.queues.insert(message, message.queue_name(), QueueConfig.from_options({}))
    (record,) = await bench.wait_for_records("AdminBounce", 1)
    assert record["queue"] == "x%40evil.com@example.com"
    assert bench.sink.messages == []
