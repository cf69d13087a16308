"""The converters config classes declare their fields with: strings, numbers, durations...

Each is a :class:`~kumocore.config.conv.Conv`: the scalar kinds (:data:`STRING`,
:data:`BOOL`, :func:`integer`, :func:`enum`), values parsed from text (:data:`DURATION`,
:data:`SIZE`, addresses, throttle and limit specs), containers (:func:`list_of`,
:func:`map_of`, :data:`TABLE`, :data:`CIDRS`) and KumoMTA's KeySource
(:data:`KEY_SOURCE`). A sub-table validated as a config class is
:func:`kumocore.config.options.nested`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from kumocore.config.cidr import CidrSet, parse_network, split_host_port
from kumocore.config.conv import Conv, Path, as_list, as_table, check_keys, same
from kumocore.config.duration import byte_size, duration_seconds
from kumocore.config.vault import is_vault_source, parse_vault_source
from kumocore.errors import ConfigError
from kumocore.throttle.spec import U64_MAX, LimitSpec, ThrottleSpec


def _checked(kind: type, expected: str) -> Conv:
    def load(value: Any, path: Path) -> Any:
        # bool is an int subclass; only a bool option takes true/false (no truthy values).
        if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            return value
        raise path.invalid(f"expected {expected}", value)

    return Conv(load)


STRING = _checked(str, "a string")
BOOL = _checked(bool, "true or false")


def integer(minimum: int = 0, maximum: int = U64_MAX) -> Conv:
    """A whole number in ``[minimum, maximum]``; by default up to the most a ``usize`` or
    ``u64`` holds, KumoMTA's widest config integers, whose serde refuses anything larger.
    ``3.0`` counts (Lua may hand floats over); ``1.5``, ``2^70`` and ``-1`` do not."""
    span = f"from {minimum} to {maximum}"

    def load(value: Any, path: Path) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if not is_int or value < minimum or value > maximum:
            raise path.invalid(f"expected a whole number {span}", value)
        return int(value)

    return Conv(load)


def enum(*allowed: str) -> Conv:
    """One of ``allowed`` (case-sensitive, as KumoMTA's serde enums are)."""

    def load(value: Any, path: Path) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        raise path.invalid(f"expected one of {', '.join(map(repr, allowed))}", value)

    return Conv(load)


def parsed(parse: Callable[[Any], Any], dump: Callable[[Any], Any] = same) -> Conv:
    """A converter from a parser that raises ``ValueError``/``ConfigError`` with a reason."""

    def load(value: Any, path: Path) -> Any:
        try:
            return parse(value)
        except (ValueError, ConfigError) as exc:
            raise path.invalid(str(exc), value) from None

    return Conv(load, dump)


def _text(check: Callable[[str], object], expected: str) -> Callable[[Any], str]:
    """A parser keeping a string that ``check`` accepts (``check`` raises ValueError)."""

    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected {expected}")
        check(value)
        return value

    return parse


DURATION = parsed(duration_seconds)
SIZE = parsed(byte_size)


def size_in(low: int, high: int) -> Conv:
    """A size (as :data:`SIZE` takes it) from ``low`` to ``high`` bytes."""

    def parse(value: Any) -> int:
        size = byte_size(value)
        if not low <= size <= high:
            raise ValueError(f"expected a size from {low} to {high} bytes")
        return size

    return parsed(parse)
IP_ADDRESS = parsed(_text(ipaddress.ip_address, "an IP address"))
SOCKET_ADDRESS = parsed(_text(split_host_port, "'host:port'"))
THROTTLE = parsed(ThrottleSpec.parse, dump=str)
# A plain limit goes back out as the number the policy wrote; 'local:' ones as strings.
LIMIT = parsed(LimitSpec.parse, dump=lambda spec: str(spec) if spec.force_local else spec.limit)


def list_of(item: Conv) -> Conv:
    """A list, kept as a tuple so the config stays immutable."""

    def load(value: Any, path: Path) -> tuple[Any, ...]:
        items = as_list(value, path)
        return tuple(item.load(v, path.item(i)) for i, v in enumerate(items, 1))

    return Conv(load, dump=lambda values: [item.dump(v) for v in values])


def map_of(item: Conv) -> Conv:
    """A table with string keys; insertion order is kept (KumoMTA uses ordered maps)."""

    def load(value: Any, path: Path) -> dict[str, Any]:
        result = {}
        for key, v in as_table(value, path).items():
            if not isinstance(key, str):
                raise path.invalid("expected a table with string keys", value)
            result[key] = item.load(v, path.item(key))
        return result

    return Conv(load, dump=lambda values: {k: item.dump(v) for k, v in values.items()})


#: A free-form table (``meta``, ``rocks_params``, ``protocol``): checked to be a table only.
TABLE = Conv(lambda value, path: dict(as_table(value, path)), dump=dict)
STRINGS = list_of(STRING)


_NETWORKS = list_of(parsed(parse_network))
CIDRS = Conv(lambda value, path: CidrSet(_NETWORKS.load(value, path)), dump=CidrSet.to_list)


#: KumoMTA's KeySource kinds kumocore cannot read: refused when the policy loads, not when
#: the first message needs the key (which would leave every message deferring).
_UNREADABLE_SOURCES = {"event_name": "event-based key sources"}


def _key_source(value: Any, path: Path) -> str | dict[Any, Any]:
    # KumoMTA's KeySource: a file name, {key_data=...} or a HashiCorp Vault table, resolved
    # by the TLS, AUTH and DKIM code when they load the key (kumocore.policy.secrets,
    # kumocore.config.vault; Vault ones read before: kumocore.config.egress_vault,
    # kumocore.config.listener_vault).
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping) or not value:
        raise path.invalid("expected a file name or a table like {key_data=...}", value)
    for key, kind in _UNREADABLE_SOURCES.items():
        if key in value:
            raise ConfigError(
                f"{path.key!r} in {path.function}: {kind} ({key} = ...) are not "
                "supported by kumocore yet; use a file name or { key_data = ... }"
            )
    if is_vault_source(value):
        parse_vault_source(value, f"{path.key!r} in {path.function}")
        return dict(value)
    check_keys(value, ("key_data",), path)
    if not isinstance(value.get("key_data"), str | bytes):
        raise path.child("key_data").invalid("expected a string", value.get("key_data"))
    return dict(value)


def _dump_key_source(value: Any) -> Any:
    return value if isinstance(value, str) else dict(value)


#: A KeySource: a file name, ``{ key_data = ... }`` or a HashiCorp Vault table.
KEY_SOURCE = Conv(_key_source, dump=_dump_key_source)
