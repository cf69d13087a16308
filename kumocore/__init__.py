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
from kumocore.policy.policyfn import (
    lua_type_name,
    policy_function,
    string_argument,
    takes_table,
)

if TYPE_CHECKING:
    from kumocore.auth_info import AclAuthInfo
    from kumocore.config.toml_text import (
        toml_encode,
        toml_encode_pretty,
        toml_encode_pretty_compact,
    )
    from kumocore.conn_meta import session_auth_info
    from kumocore.http.acl import AccessControlList
    from kumocore.http.acl_map import AclMap, load_acl_map, make_access_control_list
    from kumocore.logs.zstd_lines import ZstdLines, ZstdLinesError
    from kumocore.logs.zstd_segment import ZstdSegmentWriter
    from kumocore.mail.address import AddressError, parse_envelope_address
    from kumocore.mail.body import SharedBody
    from kumocore.mail.bounce_classes import PREDEFINED_BOUNCE_CLASSES
    from kumocore.mail.ids import new_message_id
    from kumocore.mail.message import Message
    from kumocore.mail.mime_api import BINARY_MIMEPART_FUNCTIONS, mimepart_functions
    from kumocore.mail.response import Response
    from kumocore.node.cache_capacity import NamedLru, set_lruttl_cache_capacity
    from kumocore.node.cache_stats import CacheStats, cache_stats
    from kumocore.node.fsmode import create_private_file, private_dir
    from kumocore.node.latency import observe_user_latency
    from kumocore.node.memory import (
        get_memory_hard_limit,
        get_memory_low_thresh,
        get_memory_soft_limit,
        register_memory_cache,
        set_memory_hard_limit,
        set_memory_low_thresh,
        set_memory_soft_limit,
    )
    from kumocore.node.redis_latency import (
        observe_redis_latency,
        redis_service_label,
        timed_redis_operation,
    )
    from kumocore.policy.jsonable import jsonable
    from kumocore.policy.policyfn import MultipleValues
    from kumocore.reception.trace_api import apply_supplemental_trace_header
    from kumocore.spool.health import suspend_delivery_when_spool_unhealthy

__version__ = "0.1.0"

__all__ = [
    "BINARY_MIMEPART_FUNCTIONS",
    "PREDEFINED_BOUNCE_CLASSES",
    "AccessControlList",
    "AclAuthInfo",
    "AclMap",
    "AddressError",
    "CacheStats",
    "ConfigError",
    "HookError",
    "Message",
    "MultipleValues",
    "NamedLru",
    "PolicyError",
    "Rejection",
    "Response",
    "SharedBody",
    "ZstdLines",
    "ZstdLinesError",
    "ZstdSegmentWriter",
    "__version__",
    "apply_supplemental_trace_header",
    "cache_stats",
    "create_private_file",
    "get_memory_hard_limit",
    "get_memory_low_thresh",
    "get_memory_soft_limit",
    "hookimpl",
    "hookspec",
    "jsonable",
    "load_acl_map",
    "lua_type_name",
    "make_access_control_list",
    "mimepart_functions",
    "new_message_id",
    "observe_redis_latency",
    "observe_user_latency",
    "parse_envelope_address",
    "policy_function",
    "private_dir",
    "redis_service_label",
    "register_memory_cache",
    "session_auth_info",
    "set_lruttl_cache_capacity",
    "set_memory_hard_limit",
    "set_memory_low_thresh",
    "set_memory_soft_limit",
    "string_argument",
    "suspend_delivery_when_spool_unhealthy",
    "takes_table",
    "timed_redis_operation",
    "toml_encode",
    "toml_encode_pretty",
    "toml_encode_pretty_compact",
]


#: Names a plugin needs that live deeper in the package (the message, its response...).
#: They are imported on first use, so ``import kumocore`` stays cheap for a plugin that only
#: needs ``hookimpl``; the deep modules are not part of the public API.
_LAZY_EXPORTS: dict[str, str] = {
    "AccessControlList": "kumocore.http.acl",
    "AclAuthInfo": "kumocore.auth_info",
    "AclMap": "kumocore.http.acl_map",
    "load_acl_map": "kumocore.http.acl_map",
    "make_access_control_list": "kumocore.http.acl_map",
    "AddressError": "kumocore.mail.address",
    "BINARY_MIMEPART_FUNCTIONS": "kumocore.mail.mime_api",
    "CacheStats": "kumocore.node.cache_stats",
    "Message": "kumocore.mail.message",
    "MultipleValues": "kumocore.policy.policyfn",
    "NamedLru": "kumocore.node.cache_capacity",
    "PREDEFINED_BOUNCE_CLASSES": "kumocore.mail.bounce_classes",
    "Response": "kumocore.mail.response",
    "SharedBody": "kumocore.mail.body",
    "ZstdLines": "kumocore.logs.zstd_lines",
    "ZstdLinesError": "kumocore.logs.zstd_lines",
    "ZstdSegmentWriter": "kumocore.logs.zstd_segment",
    "apply_supplemental_trace_header": "kumocore.reception.trace_api",
    "cache_stats": "kumocore.node.cache_stats",
    "create_private_file": "kumocore.node.fsmode",
    "get_memory_hard_limit": "kumocore.node.memory",
    "get_memory_low_thresh": "kumocore.node.memory",
    "get_memory_soft_limit": "kumocore.node.memory",
    "jsonable": "kumocore.policy.jsonable",
    "mimepart_functions": "kumocore.mail.mime_api",
    "new_message_id": "kumocore.mail.ids",
    "observe_redis_latency": "kumocore.node.redis_latency",
    "observe_user_latency": "kumocore.node.latency",
    "parse_envelope_address": "kumocore.mail.address",
    "private_dir": "kumocore.node.fsmode",
    "redis_service_label": "kumocore.node.redis_latency",
    "timed_redis_operation": "kumocore.node.redis_latency",
    "register_memory_cache": "kumocore.node.memory",
    "set_memory_hard_limit": "kumocore.node.memory",
    "set_memory_low_thresh": "kumocore.node.memory",
    "set_lruttl_cache_capacity": "kumocore.node.cache_capacity",
    "set_memory_soft_limit": "kumocore.node.memory",
    "session_auth_info": "kumocore.conn_meta",
    "suspend_delivery_when_spool_unhealthy": "kumocore.spool.health",
    "toml_encode": "kumocore.config.toml_text",
    "toml_encode_pretty": "kumocore.config.toml_text",
    "toml_encode_pretty_compact": "kumocore.config.toml_text",
}


def __getattr__(name: str) -> object:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kumocore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
