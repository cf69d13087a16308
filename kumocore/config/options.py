"""Turn a policy's options table into a frozen, validated dataclass.

Every ``kumo.make_*`` / ``kumo.start_*`` function takes one options table. Rather than a
hand-written validator per function, a config class subclasses :class:`Options` and
declares each field with :func:`option` and a :class:`Conv` (how a policy value is loaded,
and how ``to_dict`` writes it back). :func:`build` then does what KumoMTA gets from serde's
``deny_unknown_fields``: refuse unknown keys listing the allowed ones, convert each value,
and name the key (``domains["x.com"].relay_from[2]``) in every error.

Lua tables arrive as Python dicts and lists; an empty Lua table is ambiguous (``{}`` may
arrive as a dict or a list), so list options accept an empty dict and vice versa.

This module is the config class machinery. Beside it: :class:`Path`, :class:`Conv` and the
table checks (:mod:`kumocore.config.conv`); the converters fields are declared with,
``STRING``, ``DURATION``, ``list_of``... (:mod:`kumocore.config.converters`); the refusal
of KumoMTA options kumocore does not act on (:mod:`kumocore.config.unsupported`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar, cast, dataclass_transform

from kumocore.config.conv import Conv, Path, as_table, check_keys
from kumocore.config.unsupported import refuse_unsupported
from kumocore.errors import ConfigError

__all__ = ["Options", "OptionsT", "build", "nested", "option"]

_META_KEY = "kumocore.option"
_NO_DEFAULT: Any = object()

OptionsT = TypeVar("OptionsT", bound="Options")


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
    table = as_table({} if options is None else options, path)
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


def nested(cls: type[Options]) -> Conv:
    """A sub-table validated as the :class:`Options` class ``cls``."""
    return Conv(lambda value, path: build(cls, value, path), dump=lambda obj: obj.to_dict())
