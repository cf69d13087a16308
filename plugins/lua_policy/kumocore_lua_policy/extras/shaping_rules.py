"""Parsing one block of a shaping file: options, ``sources``, ``automation``, ``match``.

A block is a ``["domain"]``, ``["default"]`` or ``[provider."name"]`` section. Its plain
keys must be ``kumo.make_egress_path`` options (checked here, so a typo is reported with
its file and section), plus the block-level keys ``mx_rollup``, ``replace_base``,
``sources``, ``automation`` — and for providers ``match``, ``provider_connection_limit``
and ``provider_max_message_rate``, and in a provider's ``sources`` block
``provider_source_selection_rate`` (as in KumoMTA, which refuses it elsewhere).
Automation rules are validated as KumoMTA's TSA daemon reads them; kumocore does not act
on them yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kumocore.config import EgressPathConfig
from kumocore.config.duration import duration_seconds
from kumocore.throttle.spec import LimitSpec, ThrottleSpec
from kumocore_lua_policy.extras.datafile import (
    DataFileError,
    build_options,
    check_keys,
    expect,
    key_path,
    table,
)

HELPER = "kumo.shaping.load"
PATH_OPTIONS = frozenset(EgressPathConfig.option_converters)
_BLOCK_KEYS = frozenset({"mx_rollup", "replace_base", "sources", "automation"})
_PROVIDER_KEYS = frozenset({"match", "provider_connection_limit", "provider_max_message_rate"})
#: A provider's source block may also limit how often that source is selected for any
#: site of the provider (KumoMTA's shaping helper).
_PROVIDER_SOURCE_KEYS = frozenset({"provider_source_selection_rate"})
_MATCHES = ("MXSuffix", "DomainSuffix", "HostName")
_ACTIONS = ("Suspend", "SuspendTenant", "SuspendCampaign")
_CONFIG_ACTIONS = ("SetConfig", "SetDomainConfig")
_RULE_KEYS = ("regex", "action", "trigger", "duration", "match_internal")


@dataclass
class Block:
    """One section as one file wrote it (blocks for one name merge in file order)."""

    file: str
    key: str
    options: dict[str, Any]
    replace_base: bool = False
    mx_rollup: bool = True
    sources: dict[str, Block] = field(default_factory=dict)
    automation: list[dict[str, Any]] = field(default_factory=list)
    match: list[tuple[str, str]] = field(default_factory=list)


def parse_block(
    file: str, key: str, value: Any, *, provider: bool = False, nested: bool = False
) -> Block:
    section = table(HELPER, file, key, value)
    allowed = set(PATH_OPTIONS) | {"replace_base"}
    if not nested:
        allowed |= _BLOCK_KEYS
    if provider:
        nested_keys = (_PROVIDER_KEYS - {"match"}) | _PROVIDER_SOURCE_KEYS
        allowed |= nested_keys if nested else _PROVIDER_KEYS
    check_keys(HELPER, file, key, section, allowed)
    options = {
        k: v
        for k, v in section.items()
        if k in PATH_OPTIONS or k in _PROVIDER_KEYS - {"match"} or k in _PROVIDER_SOURCE_KEYS
    }
    _check_options(file, key, options)
    block = Block(file, key, options)
    block.replace_base = expect(
        HELPER,
        file,
        key_path(key, "replace_base"),
        section.get("replace_base", False),
        bool,
        "true or false",
    )
    block.mx_rollup = expect(
        HELPER,
        file,
        key_path(key, "mx_rollup"),
        section.get("mx_rollup", True),
        bool,
        "true or false",
    )
    for source, params in table(
        HELPER, file, key_path(key, "sources"), section.get("sources", {})
    ).items():
        skey = key_path(key, "sources", source)
        block.sources[source] = parse_block(file, skey, params, provider=provider, nested=True)
    rules = section.get("automation", [])
    if not isinstance(rules, list):
        raise DataFileError(
            HELPER,
            file,
            key_path(key, "automation"),
            'expected a list of rules ([["domain".automation]] sections)',
        )
    block.automation = [
        _rule(file, f"{key_path(key, 'automation')}[{n}]", rule) for n, rule in enumerate(rules, 1)
    ]
    if provider and not nested:
        block.match = _match(file, key_path(key, "match"), section.get("match"))
    return block


def _check_options(file: str, key: str, options: dict[str, Any]) -> None:
    plain = {k: v for k, v in options.items() if k in PATH_OPTIONS}
    build_options(HELPER, file, key, EgressPathConfig, plain)
    if "provider_connection_limit" in options:
        _spec(
            file,
            key_path(key, "provider_connection_limit"),
            options["provider_connection_limit"],
            LimitSpec.parse,
            "a connection limit",
        )
    for name in ("provider_max_message_rate", "provider_source_selection_rate"):
        if name in options:
            _spec(file, key_path(key, name), options[name], ThrottleSpec.parse,
                  "a rate like '100/s'")  # fmt: skip


def _spec(file: str, key: str, value: Any, parse: Any, what: str) -> None:
    try:
        parse(value)
    except Exception as exc:
        raise DataFileError(HELPER, file, key, f"expected {what}: {exc}") from exc


def _match(file: str, key: str, value: Any) -> list[tuple[str, str]]:
    # Optional, as in KumoMTA: a block may add options or automation to a provider that
    # another file (or an earlier block) gave its match rules; the blocks' rules add up.
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise DataFileError(
            HELPER,
            file,
            key,
            "expected a non-empty list of {MXSuffix=...}, {DomainSuffix=...} or {HostName=...}",
        )
    rules = []
    for n, entry in enumerate(value, 1):
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in _MATCHES:
            raise DataFileError(
                HELPER,
                file,
                f"{key}[{n}]",
                "expected one of "
                "{MXSuffix='...'}, {DomainSuffix='...'}, {HostName='...'}, "
                f"got {entry!r}",
            )
        kind, text = next(iter(entry.items()))
        expect(HELPER, file, f"{key}[{n}].{kind}", text, str, "a string")
        rules.append((kind, text.lower().removesuffix(".")))
    return rules


def _rule(file: str, key: str, rule: Any) -> dict[str, Any]:
    rule = table(HELPER, file, key, rule)
    check_keys(HELPER, file, key, rule, _RULE_KEYS)
    for required in ("regex", "action", "duration"):
        if required not in rule:
            raise DataFileError(HELPER, file, key_path(key, required), "missing (required)")
    patterns = rule["regex"] if isinstance(rule["regex"], list) else [rule["regex"]]
    for pattern in patterns:
        expect(HELPER, file, key_path(key, "regex"), pattern, str, "a regex or list of them")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DataFileError(
                HELPER, file, key_path(key, "regex"), f"invalid regex {pattern!r}: {exc}"
            ) from exc
    actions = rule["action"] if isinstance(rule["action"], list) else [rule["action"]]
    for action in actions:
        _action(file, key_path(key, "action"), action)
    trigger = rule.get("trigger", "Immediate")
    if trigger != "Immediate":
        threshold = trigger.get("Threshold") if isinstance(trigger, dict) else None
        if not isinstance(trigger, dict) or len(trigger) != 1 or threshold is None:
            raise DataFileError(
                HELPER,
                file,
                key_path(key, "trigger"),
                f"expected 'Immediate' or {{Threshold='10/hr'}}, got {trigger!r}",
            )
        _spec(
            file,
            key_path(key, "trigger", "Threshold"),
            threshold,
            ThrottleSpec.parse,
            "a rate like '10/hr'",
        )
    try:
        duration_seconds(rule["duration"])
    except Exception as exc:
        raise DataFileError(
            HELPER, file, key_path(key, "duration"), f"expected a duration like '2 hours': {exc}"
        ) from exc
    expect(
        HELPER,
        file,
        key_path(key, "match_internal"),
        rule.get("match_internal", False),
        bool,
        "true or false",
    )
    return dict(rule)


def _action(file: str, key: str, action: Any) -> None:
    if isinstance(action, str) and action in _ACTIONS:
        return
    if isinstance(action, dict) and len(action) == 1 and next(iter(action)) in _CONFIG_ACTIONS:
        kind, body = next(iter(action.items()))
        if isinstance(body, dict) and set(body) == {"name", "value"}:
            name = body["name"]
            if name not in PATH_OPTIONS:
                raise DataFileError(
                    HELPER,
                    file,
                    f"{key}.{kind}.name",
                    f"{name!r} is not a kumo.make_egress_path option",
                )
            build_options(HELPER, file, f"{key}.{kind}", EgressPathConfig, {name: body["value"]})
            return
    raise DataFileError(
        HELPER,
        file,
        key,
        "expected 'Suspend', 'SuspendTenant', "
        "'SuspendCampaign', {SetConfig={name=..., value=...}} or "
        f"{{SetDomainConfig={{name=..., value=...}}}}, got {action!r}",
    )
