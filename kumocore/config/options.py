"""Turn a policy's options table into a frozen, validated dataclass.

Every ``kumo.make_*`` / ``kumo.start_*`` function takes one options table. Rather than a
hand-written validator per function, a config class subclasses :class:`Options` and
declares each field with :func:`option` and a :class:`Conv` (how a policy value is loaded,
and how ``to_dict`` writes it back). :func:`build` then does what KumoMTA gets from serde's
``deny_unknown_fields``: refuse unknown keys listing the allowed ones, convert each value,
and name the key (``domains["x.com"].relay_from[2]``) in every error.

Lua tables arrive as Python dicts and lists; an empty Lua table is ambiguous (``{}`` may
arrive as a dict or a list), so list options accept an empty dict and vice versa.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar, cast, dataclass_transform

from kumocore.config.cidr import CidrSet, parse_network, split_host_port
from kumocore.config.duration import byte_size, duration_seconds
from kumocore.config.vault import is_vault_source, parse_vault_source
from kumocore.errors import ConfigError
from kumocore.throttle.spec import U64_MAX, LimitSpec, ThrottleSpec

_META_KEY = "kumocore.option"
_NO_DEFAULT: Any = object()

OptionsT = TypeVar("OptionsT", bound="Options")


@dataclass(frozen=True, slots=True)
class Path:
    """Where a value sits in a policy's options, for error messages."""

    function: str
    key: str = ""

    def child(self, name: str) -> Path:
        return Path(self.function, f"{self.key}.{name}" if self.key else name)

    def item(self, index: int | str) -> Path:
        """A list element (1-based, as Lua counts) or a map entry, in Lua's syntax."""
        suffix = f'["{index}"]' if isinstance(index, str) else f"[{index}]"
        return Path(self.function, self.key + suffix)

    def invalid(self, reason: str, value: Any) -> ConfigError:
        where = f"{self.key!r} in {self.function}" if self.key else f"options of {self.function}"
        # "invalid value" as serde words it: KumoMTA's typing helper tells a bad value of
        # a known option from an unknown option by that word (policy-extras.typing).
        return ConfigError(f"invalid value for {where}: {reason}, got {_show(value)}")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Conv:
    """How an option is loaded (``load(value, path)``, raising ``path.invalid(...)``)
    and dumped back by ``to_dict``."""

    load: Callable[[Any, Path], Any]
    dump: Callable[[Any], Any] = _same


def option(
    conv: Conv,
    *,
    default: Any = _NO_DEFAULT,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare a field of an :class:`Options` class.

    ``default`` is written as a policy would write it (``'20m'``, ``['127.0.0.1']``) and
    converted by ``conv`` once, so class bodies read like KumoMTA's documentation.
    """
    metadata = {_META_KEY: conv}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if default is _NO_DEFAULT:
        return dataclasses.field(metadata=metadata)
    if default is None:
        return dataclasses.field(default=None, metadata=metadata)
    load_default = functools.partial(conv.load, default, Path("<defaults>"))
    value = load_default()
    if value.__hash__ is None:  # dataclasses refuse mutable defaults: build a fresh one each time
        return dataclasses.field(default_factory=load_default, metadata=metadata)
    return dataclasses.field(default=value, metadata=metadata)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(option,))
class Options:
    """Base of the config classes: ``class X(Options, options_for="kumo.make_x")``.

    Subclasses become frozen, keyword-only dataclasses whose fields are all :func:`option`.
    """

    #: The ``kumo.*`` function whose options table this class validates (for errors).
    options_for: ClassVar[str]
    option_converters: ClassVar[dict[str, Conv]]
    required_options: ClassVar[frozenset[str]]
    #: KumoMTA options kumocore parses but does not act on: refused at load when a
    #: policy sets them to anything but their default (see :func:`refuse_unsupported`).
    unsupported_options: ClassVar[frozenset[str]]

    def __init_subclass__(
        cls, *, options_for: str, unsupported: Iterable[str] = (), **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True, kw_only=True)(cls)
        fields = dataclasses.fields(cast(Any, cls))
        plain = [f.name for f in fields if _META_KEY not in f.metadata]
        if plain:
            raise TypeError(f"{cls.__name__}: declare {', '.join(plain)} with option()")
        cls.options_for = options_for
        cls.unsupported_options = frozenset(unsupported)
        unknown = cls.unsupported_options - {f.name for f in fields}
        if unknown:
            raise TypeError(f"{cls.__name__}: unsupported names no option: {sorted(unknown)}")
        cls.option_converters = {f.name: f.metadata[_META_KEY] for f in fields}
        cls.required_options = frozenset(
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None, *, function: str = "") -> Self:
        """Validate a policy's options table; raises :class:`ConfigError` naming the key.

        ``function`` names the caller in errors instead of :attr:`options_for`
        (``kumo.define_egress_pool`` takes ``kumo.make_egress_pool``'s table)."""
        return build(cls, options, Path(function or cls.options_for))

    def to_dict(self) -> dict[str, Any]:
        """Plain data that ``from_options`` accepts back, each value as its converter
        dumps it (durations in seconds, CIDRs and specs as strings; the egress and queue
        configs write KumoMTA's serde form: :mod:`kumocore.config.kumo_serde`)."""
        items = self.option_converters.items()
        values = ((name, conv, getattr(self, name)) for name, conv in items)
        return {name: None if v is None else conv.dump(v) for name, conv, v in values}


def build(cls: type[OptionsT], options: Mapping[str, Any] | None, path: Path) -> OptionsT:
    """An instance of the :class:`Options` subclass ``cls`` from a policy table."""
    table = _as_table({} if options is None else options, path)
    check_keys(table, cls.option_converters, path)
    kwargs: dict[str, Any] = {}
    for name, conv in cls.option_converters.items():
        value = table.get(name)
        if value is not None:  # Lua nil and Python None both mean "not given"
            kwargs[name] = conv.load(value, path.child(name))
        elif name in cls.required_options:
            raise ConfigError(f"missing required key {path.child(name).key!r} for {path.function}")
    for name in cls.unsupported_options & kwargs.keys():
        if kwargs[name] != _default_of(cls, name):
            refuse_unsupported(name, path)
    return cls(**kwargs)


def _default_of(cls: type[Options], name: str) -> Any:
    field = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


#: Set (by ``kumocore serve/validate --allow-unsupported``) in the environment, so that
#: worker processes inherit the operator's choice.
ALLOW_UNSUPPORTED_ENV = "KUMOCORE_ALLOW_UNSUPPORTED"
_ignored: dict[str, str] = {}


def allow_unsupported(allow: bool = True) -> None:
    """Let policies set unsupported KumoMTA options (each is then listed as a warning)."""
    if allow:
        os.environ[ALLOW_UNSUPPORTED_ENV] = "1"
    else:
        os.environ.pop(ALLOW_UNSUPPORTED_ENV, None)


def ignored_options() -> dict[str, str]:
    """``{option: function}`` of every unsupported option a policy set and that was
    ignored because the operator allowed it."""
    return dict(_ignored)


def refuse_unsupported(name: str, path: Path) -> None:
    """A KumoMTA option kumocore does not act on: a :class:`ConfigError` naming it,
    unless the operator opted in, in which case it is remembered and logged once."""
    where = path.child(name)
    if os.environ.get(ALLOW_UNSUPPORTED_ENV) != "1":
        raise ConfigError(
            f"KumoMTA's option {name!r} is not supported by kumocore yet "
            f"({where.key!r} in {where.function}); remove it, or start kumocore with "
            "--allow-unsupported to run with it ignored"
        )
    if name not in _ignored:
        import structlog

        _ignored[name] = where.function
        structlog.get_logger("kumocore.config").warning(
            "KumoMTA option not supported by kumocore yet; ignored (--allow-unsupported)",
            option=name, function=where.function)


def check_keys(table: Mapping[Any, Any], allowed: Iterable[str], path: Path) -> None:
    """Refuse a key not in ``allowed``, listing the allowed ones (serde's deny_unknown_fields)."""
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown key {path.child(str(key)).key!r} for {path.function}{hint}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def _show(value: Any) -> str:
    """The value as a Lua policy author would recognise it."""
    if value is None or isinstance(value, bool):
        return {None: "nil", True: "true", False: "false"}[value]
    if isinstance(value, Mapping | list | tuple):
        return "a table" if isinstance(value, Mapping) else "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_table(value: Any, path: Path) -> Mapping[Any, Any]:
    if isinstance(value, Mapping) or value in ([], ()):  # an empty Lua table may be a list
        return value or {}
    raise path.invalid("expected a table", value)


def _as_list(value: Any, path: Path) -> Sequence[Any]:
    if isinstance(value, list | tuple) or value == {}:  # an empty Lua table may be a dict
        return value or []
    raise path.invalid("expected a list", value)


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


def parsed(parse: Callable[[Any], Any], dump: Callable[[Any], Any] = _same) -> Conv:
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
IP_ADDRESS = parsed(_text(ipaddress.ip_address, "an IP address"))
SOCKET_ADDRESS = parsed(_text(split_host_port, "'host:port'"))
THROTTLE = parsed(ThrottleSpec.parse, dump=str)
# A plain limit goes back out as the number the policy wrote; 'local:' ones as strings.
LIMIT = parsed(LimitSpec.parse, dump=lambda spec: str(spec) if spec.force_local else spec.limit)


def list_of(item: Conv) -> Conv:
    """A list, kept as a tuple so the config stays immutable."""

    def load(value: Any, path: Path) -> tuple[Any, ...]:
        items = _as_list(value, path)
        return tuple(item.load(v, path.item(i)) for i, v in enumerate(items, 1))

    return Conv(load, dump=lambda values: [item.dump(v) for v in values])


def map_of(item: Conv) -> Conv:
    """A table with string keys; insertion order is kept (KumoMTA uses ordered maps)."""

    def load(value: Any, path: Path) -> dict[str, Any]:
        result = {}
        for key, v in _as_table(value, path).items():
            if not isinstance(key, str):
                raise path.invalid("expected a table with string keys", value)
            result[key] = item.load(v, path.item(key))
        return result

    return Conv(load, dump=lambda values: {k: item.dump(v) for k, v in values.items()})


#: A free-form table (``meta``, ``rocks_params``, ``protocol``): checked to be a table only.
TABLE = Conv(lambda value, path: dict(_as_table(value, path)), dump=dict)
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
            raise ConfigError(f"{path.key!r} in {path.function}: {kind} ({key} = ...) are not "
                              "supported by kumocore yet; use a file name or { key_data = ... }")
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


def nested(cls: type[Options]) -> Conv:
    """A sub-table validated as the :class:`Options` class ``cls``."""
    return Conv(lambda value, path: build(cls, value, path), dump=lambda obj: obj.to_dict())
