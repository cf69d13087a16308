"""kumocore: a mail transfer agent that runs KumoMTA-style policies and pluggy plugins.

The public API for plugins and Python policies lives here.

Owns the public API a plugin or Python policy may import (``hookimpl``, ``Rejection``,
``ConfigError``, ``policy_function``...). It does not own any part of the data path: that is
mapped, module by module, in docs/contributing.md ("The data path").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from kumocore.errors import ConfigError, HookError, PolicyError, Rejection
from kumocore.hookspecs import hookimpl, hookspec
from kumocore.policy.policyfn import policy_function, takes_table

if TYPE_CHECKING:
    from kumocore.mail.address import AddressError, parse_envelope_address
    from kumocore.mail.body import SharedBody
    from kumocore.mail.ids import new_message_id
    from kumocore.mail.message import Message
    from kumocore.mail.mime_api import BINARY_MIMEPART_FUNCTIONS, mimepart_functions
    from kumocore.mail.response import Response
    from kumocore.node.fsmode import create_private_file, private_dir
    from kumocore.policy.jsonable import jsonable
    from kumocore.policy.policyfn import MultipleValues

__version__ = "0.1.0"

__all__ = [
    "BINARY_MIMEPART_FUNCTIONS",
    "AddressError",
    "ConfigError",
    "HookError",
    "Message",
    "MultipleValues",
    "PolicyError",
    "Rejection",
    "Response",
    "SharedBody",
    "__version__",
    "create_private_file",
    "hookimpl",
    "hookspec",
    "jsonable",
    "mimepart_functions",
    "new_message_id",
    "parse_envelope_address",
    "policy_function",
    "private_dir",
    "takes_table",
]


#: Names a plugin needs that live deeper in the package (the message, its response...).
#: They are imported on first use, so ``import kumocore`` stays cheap for a plugin that only
#: needs ``hookimpl``; the deep modules are not part of the public API.
_LAZY_EXPORTS: dict[str, str] = {
    "AddressError": "kumocore.mail.address",
    "BINARY_MIMEPART_FUNCTIONS": "kumocore.mail.mime_api",
    "Message": "kumocore.mail.message",
    "MultipleValues": "kumocore.policy.policyfn",
    "Response": "kumocore.mail.response",
    "SharedBody": "kumocore.mail.body",
    "create_private_file": "kumocore.node.fsmode",
    "jsonable": "kumocore.policy.jsonable",
    "mimepart_functions": "kumocore.mail.mime_api",
    "new_message_id": "kumocore.mail.ids",
    "parse_envelope_address": "kumocore.mail.address",
    "private_dir": "kumocore.node.fsmode",
}


def __getattr__(name: str) -> object:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kumocore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
