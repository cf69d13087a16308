"""The severities of ``kumo.shaping.load``'s ``options``: what to do with each kind of
problem found while loading shaping data.

Each option (``aliased_site``, ``dns_fail``, ``local_load``, ``null_mx``,
``provider_overlap``, ``remote_load``) is ``'Ignore'``, ``'Warn'`` (logged and listed by
``get_warnings``) or ``'Error'`` (the load fails), with KumoMTA's defaults. The options
about HTTP sources are :mod:`kumocore_lua_policy.extras.shaping_remote`'s.

Its own module because it is the checking of one options table, apart from the merging of
the shaping data (:mod:`kumocore_lua_policy.extras.shaping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kumocore_lua_policy.extras.datafile import DataFileError
from kumocore_lua_policy.extras.shaping_remote import REMOTE_OPTIONS
from kumocore_lua_policy.extras.shaping_rules import HELPER

SEVERITIES = ("Ignore", "Warn", "Error")
_OPTION_DEFAULTS = {
    "aliased_site": "Ignore",
    "dns_fail": "Ignore",
    "local_load": "Error",
    "null_mx": "Ignore",
    "provider_overlap": "Ignore",
    "remote_load": "Ignore",
}


def _load_options(options: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(_OPTION_DEFAULTS)
    for name, value in options.items():
        if name in REMOTE_OPTIONS:
            continue  # checked by RemoteOptions.parse
        if name not in _OPTION_DEFAULTS:
            known = ", ".join(sorted([*_OPTION_DEFAULTS, *REMOTE_OPTIONS]))
            raise DataFileError(HELPER, "options", name, f"unknown option; expected one of {known}")
        if value not in SEVERITIES:
            raise DataFileError(
                HELPER, "options", name, f"expected 'Ignore', 'Warn' or 'Error', got {value!r}"
            )
        result[name] = value
    return result
