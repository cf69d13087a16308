"""kumocore-bounce-classifier: KumoMTA's ``kumo.configure_bounce_classifier`` for kumocore.

The policy configures it in ``init``::

    kumo.configure_bounce_classifier {
      files = { '/path/to/default.toml', '/etc/kumo/my-rules.toml' },
    }

:func:`default_rules_path` is the bundled rules file; policies (Lua and Python) get it as
``kumo.bounce_classifier_default_rules()``, and ``python -m kumocore_bounce_classifier``
prints it. kumocore then asks
``kumo_classify_bounce`` for the ``bounce_classification`` of each failure it logs.
See docs/bounce-classification.md.

Owns the classification rules and matching a response against them. It does not own the log
records the classification goes into (kumocore's journal asks the hook).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumocore import ConfigError, hookimpl, policy_function
from kumocore_bounce_classifier.classifier import BounceClassifier, LruCache
from kumocore_bounce_classifier.rules import (
    PREDEFINED_CLASSES,
    UNCATEGORIZED,
    Rule,
    load_rule_files,
    load_rules,
)

if TYPE_CHECKING:
    from kumocore import Response

__all__ = [
    "PREDEFINED_CLASSES",
    "UNCATEGORIZED",
    "BounceClassifier",
    "BounceClassifierPlugin",
    "LruCache",
    "Rule",
    "default_rules_path",
    "load_rule_files",
    "load_rules",
]

_FUNCTION = "configure_bounce_classifier"

# KumoMTA's options and their defaults. back_pressure and pool_size size KumoMTA's
# classification thread pool; here classification runs inline (a cached lookup costs well
# under a microsecond), so they are validated and kept but change nothing.
_INT_OPTIONS: dict[str, tuple[int, int]] = {  # name: (default, minimum)
    "back_pressure": (131072, 1),
    "pool_size": (max(1, (os.cpu_count() or 4) // 4), 1),
    "cache_size": (1024, 0),
    "uncategorized_cache_size": (1024, 0),
}
_ALLOWED = ("files", *_INT_OPTIONS)


def default_rules_path() -> str:
    """Path of the bundled rules file (IANA enhanced codes plus common provider texts)."""
    return str(Path(__file__).with_name("rules") / "default.toml")


class BounceClassifierPlugin:
    """One instance per plugin manager, so each manager has its own classifier."""

    def __init__(self) -> None:
        self.classifier: BounceClassifier | None = None
        self.settings: dict[str, int] = {}

    def configure(self, **options: Any) -> BounceClassifier:
        """What ``kumo.configure_bounce_classifier`` does; a later call replaces the rules."""
        for key in options:
            if key not in _ALLOWED:
                raise ConfigError(
                    f"unknown key {key!r} for {_FUNCTION}; allowed: {', '.join(sorted(_ALLOWED))}"
                )
        files = _files(options.get("files"))
        settings = {
            name: _int_option(name, options.get(name), default, minimum)
            for name, (default, minimum) in _INT_OPTIONS.items()
        }
        classifier = BounceClassifier(
            load_rule_files(files),
            cache_size=settings["cache_size"],
            uncategorized_cache_size=settings["uncategorized_cache_size"],
        )
        self.classifier, self.settings = classifier, settings
        return classifier

    @hookimpl(trylast=True)
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        @policy_function(table=True)
        def configure_bounce_classifier(**options: Any) -> None:
            self.configure(**options)

        # kumocore's own addition: where the bundled rules are installed, so a policy (the
        # bundled default one among them) can name them wherever kumocore is installed.
        return {_FUNCTION: configure_bounce_classifier,
                "bounce_classifier_default_rules": default_rules_path}

    @hookimpl(trylast=True)
    def kumo_classify_bounce(self, response: Response) -> str | None:
        """The class of ``response``; None while the policy has not configured rules."""
        classifier = self.classifier
        if classifier is None:
            return None
        return classifier.classify(response.to_single_line())


def _files(value: Any) -> list[str]:
    if value is None:
        raise ConfigError(f"missing required key 'files' for {_FUNCTION}")
    if isinstance(value, str | os.PathLike):
        value = [value]  # forgive a single file name; KumoMTA wants a list
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(
            f"invalid value for 'files' in {_FUNCTION}: expected a list of file names")
    for item in value:
        if not isinstance(item, str | os.PathLike):
            raise ConfigError(
                f"invalid value for 'files' in {_FUNCTION}: expected file names, got {item!r}"
            )
    return [os.fspath(item) for item in value]


def _int_option(name: str, value: Any, default: int, minimum: int) -> int:
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Lua hands numbers over as floats
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"bad value for {name!r} in {_FUNCTION}: expected a whole number of at least "
            f"{minimum}, got {value!r}"
        )
    return value
