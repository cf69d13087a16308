"""``kumo.dmarc.check_msg`` and ``kumo.string.psl_domain``/``psl_suffix`` for policies.

``kumo.dmarc.check_msg(msg, dkim_results, resolver, spf_result, use_reporting)`` takes its
arguments in KumoMTA's order: the message, what ``msg:dkim_verify()`` returned, an
optional resolver name (``kumo.dns.define_resolver``), what ``kumo.spf.check_msg``
returned (its ``result`` table, or the whole answer), and whether to write failure
reports. It answers ``{ disposition = 'Reject', result = {...} }``: ``disposition`` is
one of Pass, None, Quarantine, Reject, TempError, PermError; ``result`` is a ``dmarc``
authentication result for ``msg:add_authentication_results`` whose ``result`` is
``pass``, ``none``, ``temperror``, ``permerror`` or (for Quarantine and Reject) ``fail``.

Failure reporting (``use_reporting = true``) is not implemented: asking for it is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kumocore.dmarc.evaluate import QUARANTINE, REJECT, DmarcInput, DmarcOutcome, evaluate
from kumocore.dmarc.psl import load_in_thread, psl_domain, psl_suffix, start_loading
from kumocore.dns.lists import NamedResolvers
from kumocore.errors import ConfigError
from kumocore.mail.header_address import NotSingleAddressError
from kumocore.policy.policyfn import policy_function

_NAME = "kumo.dmarc.check_msg"


def _auth_result(result: str, reason: str, props: Mapping[str, str]) -> dict[str, Any]:
    return {"method": "dmarc", "method_version": None, "result": result,
            "reason": reason, "props": dict(props)}


def output(outcome: DmarcOutcome) -> dict[str, Any]:
    """KumoMTA's answer: a fail result names the published policy it applies."""
    props = dict(outcome.props)
    if outcome.disposition in (QUARANTINE, REJECT):
        props["policy.published-domain-policy"] = outcome.disposition.lower()
        result = "fail"
    else:
        result = outcome.disposition.lower()
    return {"disposition": outcome.disposition,
            "result": _auth_result(result, outcome.reason, props)}


def _not_applicable(reason: str) -> dict[str, Any]:
    return {"disposition": "None", "result": _auth_result("none", reason, {})}


def from_domain(msg: Any) -> str | dict[str, Any]:
    """The domain of the (first) From header's single address, or the ``None`` answer
    KumoMTA gives when there is no such domain."""
    try:
        header = msg.from_header()
    except ValueError:
        header = None
    if header is None:
        return _not_applicable("Only single 'From:' header supported")
    try:
        domain = str(header.domain)
    except NotSingleAddressError:
        domain = ""
    return domain or _not_applicable("'From:' header missing domain")


def _dkim_results(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping) and not value:
        return []  # an empty Lua table arrives as {}
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ConfigError(f"{_NAME}: DKIM_RESULTS must be a list of authentication results "
                          f"(msg:dkim_verify()), got {value!r:.60}")
    for entry in value:
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{_NAME}: each DKIM result must be a table, got {entry!r:.60}")
    return list(value)


def _spf_result(value: Any) -> Mapping[str, Any]:
    # Accept kumo.spf.check_msg's whole answer too, not only its ``result`` field.
    if isinstance(value, Mapping) and isinstance(value.get("result"), Mapping):
        value = value["result"]
    if not isinstance(value, Mapping) or not isinstance(value.get("result"), str):
        raise ConfigError(f"{_NAME}: SPF_RESULT must be the authentication result of "
                          f"kumo.spf.check_msg (a table with a 'result'), got {value!r:.60}")
    return value


def _mail_from_domain(msg: Any) -> str | None:
    sender = getattr(msg, "sender", None)
    domain = getattr(sender, "domain", None)
    return domain if isinstance(domain, str) else None


def make_dmarc_functions(resolvers: NamedResolvers) -> dict[str, Callable[..., Any]]:
    """The ``dmarc.*`` and ``string.psl_*`` entries of ``kumo_register_policy_functions``."""
    start_loading()  # parse the Public Suffix List now, off the event loop (see .psl)

    @policy_function(table=False)
    async def check_msg(msg: Any, dkim_results: Any, resolver_name: Any, spf_result: Any,
                        use_reporting: Any = False, reporting_info: Any = None) -> dict[str, Any]:
        """``kumo.dmarc.check_msg(msg, dkim_results, resolver, spf_result, use_reporting)``:
        the DMARC result for the message's From domain. ``dkim_results`` is what
        ``msg:dkim_verify()`` returned, ``resolver`` nil or a defined resolver's name,
        ``spf_result`` the ``result`` of ``kumo.spf.check_msg``; ``use_reporting`` must be
        false (failure reports are not written; ``reporting_info`` is then unused)."""
        if not hasattr(msg, "from_header"):
            raise ConfigError(f"{_NAME}: expected a message, got {msg!r:.60}")
        if use_reporting not in (None, False):
            raise ConfigError(f"{_NAME}: DMARC failure reports (use_reporting = true) are not "
                              "supported by kumocore yet; pass false")
        if resolver_name is not None and not isinstance(resolver_name, str):
            raise ConfigError(f"{_NAME}: RESOLVER must be a resolver name, got "
                              f"{resolver_name!r:.60}")
        dkim = _dkim_results(dkim_results)
        spf = _spf_result(spf_result)
        resolver = resolvers.get(resolver_name)
        domain = from_domain(msg)
        if not isinstance(domain, str):
            return domain
        check = DmarcInput(domain, _mail_from_domain(msg), dkim, spf)
        await load_in_thread()
        return output(await evaluate(resolver, check))

    return {"dmarc.check_msg": check_msg,
            "string.psl_domain": psl_domain, "string.psl_suffix": psl_suffix}
