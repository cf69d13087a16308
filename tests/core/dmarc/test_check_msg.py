"""``kumo.dmarc.check_msg`` as contributed to policies: KumoMTA's argument order and
answer shape, the From header rules, the SPF/DKIM inputs it accepts and refused options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kumocore.dmarc.policy import make_dmarc_functions
from kumocore.dns import Resolver
from kumocore.dns.lists import NamedResolvers
from kumocore.errors import ConfigError
from kumocore.mail.message import Message
from tests.core.dmarc.conftest import dkim_pass, spf_result

Zone = Callable[..., None]


@pytest.fixture
def check_msg(resolver: Resolver) -> Callable[..., Any]:
    functions = make_dmarc_functions(NamedResolvers(resolver))
    assert set(functions) == {"dmarc.check_msg", "string.psl_domain", "string.psl_suffix"}
    return functions["dmarc.check_msg"]


def message(from_value: str | None, sender: str = "bounce@example.com") -> Message:
    head = f"From: {from_value}\r\n" if from_value is not None else ""
    return Message(sender, "rcpt@receiver.example",
                   f"{head}Subject: hi\r\n\r\nhello\r\n".encode())


async def test_a_reject_failure_answers_fail_with_the_published_policy(
    zone: Zone, check_msg: Callable[..., Any],
) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject; adkim=s")
    out = await check_msg(message("Joe <joe@example.com>"), [dkim_pass("example.net")], None,
                          spf_result("fail", "bounce@example.com"), False)
    assert out == {
        "disposition": "Reject",
        "result": {
            "method": "dmarc", "method_version": None, "result": "fail",
            "reason": "DMARC: DKIM strict check failed",
            "props": {"policy.p": "reject", "policy.adkim": "s",
                      "policy.published-domain-policy": "reject"},
        },
    }


async def test_a_pass_answers_pass_with_the_record_tags(
    zone: Zone, check_msg: Callable[..., Any],
) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=quarantine")
    out = await check_msg(message("joe@Example.COM"), [], None,
                          spf_result("pass", "bounce@mail.example.com"), False)
    assert out["disposition"] == "Pass"
    assert out["result"]["result"] == "pass"
    assert out["result"]["reason"] == "Success"
    assert out["result"]["props"] == {"policy.p": "quarantine"}


async def test_no_record_answers_permerror_as_kumomta_does(check_msg: Callable[..., Any]) -> None:
    out = await check_msg(message("joe@example.com"), {}, None, spf_result("none"), False)
    assert out["disposition"] == "PermError"
    assert out["result"] == {"method": "dmarc", "method_version": None, "result": "permerror",
                             "reason": "no DMARC records found for example.com", "props": {}}


async def test_the_whole_spf_answer_is_accepted_as_well_as_its_result(
    zone: Zone, check_msg: Callable[..., Any],
) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject")
    spf = spf_result("pass", "bounce@example.com")
    out = await check_msg(message("joe@example.com"), [], None,
                          {"disposition": "pass", "result": spf}, False)
    assert out["disposition"] == "Pass"


async def test_the_envelope_sender_domain_stands_in_for_spf_props(
    zone: Zone, check_msg: Callable[..., Any],
) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject")
    out = await check_msg(message("joe@example.com", sender="b@example.com"), [], None,
                          {"method": "spf", "result": "pass"}, False)
    assert out["disposition"] == "Pass"


@pytest.mark.parametrize(("from_value", "reason"), [
    (None, "Only single 'From:' header supported"),
    ("a@example.com, b@example.net", "'From:' header missing domain"),
    ("Team: a@example.com, b@example.com;", "'From:' header missing domain"),
    ("no-domain-here", "'From:' header missing domain"),
])
async def test_without_one_from_domain_dmarc_does_not_apply(
    check_msg: Callable[..., Any], dns_server: Any, from_value: str | None, reason: str,
) -> None:
    out = await check_msg(message(from_value), [], None, spf_result("pass"), False)
    assert out == {"disposition": "None", "result": {
        "method": "dmarc", "method_version": None, "result": "none", "reason": reason,
        "props": {}}}
    assert dns_server.queries == []


async def test_failure_reporting_is_refused(check_msg: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match=r"use_reporting = true.*not supported"):
        await check_msg(message("joe@example.com"), [], None, spf_result("pass"), True,
                        {"org_name": "x", "email": "dmarc@x.example"})


@pytest.mark.parametrize(("args", "error"), [
    (("not a message", [], None, {"result": "pass"}, False), "expected a message"),
    ((None, "dkim", None, {"result": "pass"}, False), "expected a message"),
    ((message("a@example.com"), "dkim", None, {"result": "pass"}, False), "DKIM_RESULTS"),
    ((message("a@example.com"), ["x"], None, {"result": "pass"}, False), "each DKIM result"),
    ((message("a@example.com"), [], None, None, False), "SPF_RESULT"),
    ((message("a@example.com"), [], 5, {"result": "pass"}, False), "RESOLVER"),
    ((message("a@example.com"), [], "nope", {"result": "pass"}, False), "nope is not defined"),
])
async def test_bad_arguments_are_refused(
    check_msg: Callable[..., Any], args: tuple[Any, ...], error: str,
) -> None:
    with pytest.raises(ConfigError, match=error):
        await check_msg(*args)
