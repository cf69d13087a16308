"""The SPF tests' fixtures (the real loopback DNS server: ``dns_server``, ``resolver``,
``zone``; the recording ``sink``) and a DMARC check against that DNS server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kumocore.dmarc import DmarcInput, DmarcOutcome, evaluate
from kumocore.dns import Resolver
from tests.core.spf.conftest import dns_server, resolver, sink, zone

__all__ = ["dns_server", "resolver", "sink", "zone"]

Check = Callable[..., Awaitable[DmarcOutcome]]


def dkim_pass(domain: str | None, result: str = "pass") -> dict[str, Any]:
    """An authentication result as msg:dkim_verify() gives it."""
    props = {} if domain is None else {"header.d": domain, "header.s": "s1"}
    return {"method": "dkim", "method_version": None, "result": result, "props": props}


def spf_result(result: str, mail_from: str | None = None,
               helo: str | None = None) -> dict[str, Any]:
    """An authentication result as kumo.spf.check_msg gives it."""
    props = {}
    if mail_from is not None:
        props["smtp.mailfrom"] = mail_from
    if helo is not None:
        props["smtp.helo"] = helo
    return {"method": "spf", "method_version": None, "result": result, "props": props}


@pytest.fixture
def dmarc(resolver: Resolver) -> Check:
    """``await dmarc("example.com", dkim=[...], spf=..., mail_from_domain=..., sample=...)``."""

    async def run(from_domain: str, *, dkim: list[dict[str, Any]] | None = None,
                  spf: dict[str, Any] | None = None, mail_from_domain: str | None = None,
                  sample: Callable[[], int] | None = None) -> DmarcOutcome:
        check = DmarcInput(from_domain, mail_from_domain, dkim or [],
                           spf or spf_result("none"))
        return await evaluate(resolver, check, sample=sample or (lambda: 0))

    return run
