"""Validated configuration objects built from a policy's options tables.

Each ``kumo.*`` function that takes an options table has a frozen dataclass here with
KumoMTA's field names and defaults; ``X.from_options(table)`` validates (raising
:class:`kumocore.ConfigError` naming the key) and ``x.to_dict()`` gives plain data back.

Owns parsing and validating options into typed objects. It does not own what the options do
once valid (queues, listeners, spools read them), nor when the policy is asked for them (the
hooks in :mod:`kumocore.policy.hooks`).
"""

from __future__ import annotations

from kumocore.config.cidr import CidrSet, split_host_port
from kumocore.config.conv import Conv, Path
from kumocore.config.duration import format_duration, parse_duration, parse_size
from kumocore.config.egress import (
    EgressPathConfig,
    EgressPool,
    EgressPoolEntry,
    EgressSource,
    SuspendOnFailure,
)
from kumocore.config.http_listener import HttpListenerConfig
from kumocore.config.listener_domain import ListenerDomain
from kumocore.config.listeners import EsmtpListenerConfig, TraceHeaders
from kumocore.config.options import Options, option
from kumocore.config.queue import QueueConfig, QueueShrinkPolicy
from kumocore.config.spool import MinFree, SpoolDefinition
from kumocore.config.unsupported import refuse_unsupported

__all__ = [
    "CidrSet",
    "Conv",
    "EgressPathConfig",
    "EgressPool",
    "EgressPoolEntry",
    "EgressSource",
    "EsmtpListenerConfig",
    "HttpListenerConfig",
    "ListenerDomain",
    "MinFree",
    "Options",
    "Path",
    "QueueConfig",
    "QueueShrinkPolicy",
    "SpoolDefinition",
    "SuspendOnFailure",
    "TraceHeaders",
    "format_duration",
    "option",
    "parse_duration",
    "parse_size",
    "refuse_unsupported",
    "split_host_port",
]
