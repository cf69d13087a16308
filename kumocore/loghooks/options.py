"""``kumo.configure_log_hook { ... }``: KumoMTA's options, validated.

Every mistake raises :class:`~kumocore.errors.ConfigError` naming the key, as KumoMTA's
``deny_unknown_fields`` does. Options kumocore cannot honour are refused, not ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kumocore.errors import ConfigError
from kumocore.logs.options import names, per_record_entries

#: What ``reception_protocol`` says on a message made from a log record.
LOG_RECORD_PROTOCOL = "LogRecord"
_FN = "configure_log_hook"
_KEYS = frozenset({"name", "back_pressure", "meta", "headers", "per_record", "deferred_spool"})
_PER_RECORD_KEYS = frozenset({"enable", "template"})
DEFAULT_BACK_PRESSURE = 128_000  # KumoMTA's default, shared with the local logs


@dataclass(frozen=True, slots=True)
class LogHookConfig:
    """One log hook: which records become messages, with which meta and headers."""

    name: str
    back_pressure: int = DEFAULT_BACK_PRESSURE
    meta: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    #: ``per_record = { Type = { enable = ... } }``: the record types given an entry.
    enabled: Mapping[str, bool] = field(default_factory=dict)

    def wants(self, record_type: str) -> bool:
        """Whether records of this type reach ``should_enqueue_log_record`` (a type with
        no entry of its own follows ``Any``, as in KumoMTA)."""
        if record_type in self.enabled:
            return self.enabled[record_type]
        return self.enabled.get("Any", True)


def parse_per_record(value: Any, fn: str = _FN) -> dict[str, bool]:
    """``per_record = { Type = { enable = ... } }`` as a type → enabled map."""
    enabled: dict[str, bool] = {}
    for kind, where, entry in per_record_entries(value, fn, _PER_RECORD_KEYS):
        if entry.get("template") is not None:
            raise ConfigError(f"{fn}: {where}.template: record templates are not supported "
                              "by kumocore yet; the message body is the record's JSON")
        enable = entry.get("enable", True)
        if not isinstance(enable, bool):
            raise ConfigError(f"{fn}: {where}.enable: expected true or false")
        enabled[kind] = enable
    return enabled


def parse_options(options: Mapping[str, Any]) -> LogHookConfig:
    """Validate ``configure_log_hook`` options (defaults as in KumoMTA)."""
    for unknown in sorted(set(options) - _KEYS):
        raise ConfigError(f"{_FN}: unknown option {unknown!r} "
                          f"(known: {', '.join(sorted(_KEYS))})")
    name = options.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{_FN}: name is required (a non-empty string)")
    if options.get("deferred_spool"):
        raise ConfigError(f"{_FN}: deferred_spool = true is not supported by kumocore: "
                          "hook records are always spooled before they count as logged")
    kwargs: dict[str, Any] = {"name": name}
    if options.get("back_pressure") is not None:
        value = options["back_pressure"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{_FN}: back_pressure: expected an integer >= 1, got {value!r}")
        kwargs["back_pressure"] = value
    for key in ("meta", "headers"):
        if options.get(key) is not None:
            kwargs[key] = names(options[key], _FN, key)
    if options.get("per_record") is not None:
        kwargs["enabled"] = parse_per_record(options["per_record"])
    return LogHookConfig(**kwargs)
