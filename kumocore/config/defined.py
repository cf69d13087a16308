"""What the policy's ``init`` defined: spools, listeners, egress sources and pools."""

from __future__ import annotations

from dataclasses import dataclass, field

from kumocore.config.egress import EgressPool, EgressSource
from kumocore.config.http_listener import HttpListenerConfig
from kumocore.config.listeners import EsmtpListenerConfig
from kumocore.config.spool import SpoolDefinition


@dataclass
class ServerConfig:
    """Everything the policy's ``init`` defined, in definition order."""

    spools: dict[str, SpoolDefinition] = field(default_factory=dict)
    esmtp_listeners: list[EsmtpListenerConfig] = field(default_factory=list)
    http_listeners: list[HttpListenerConfig] = field(default_factory=list)
    egress_sources: dict[str, EgressSource] = field(default_factory=dict)
    egress_pools: dict[str, EgressPool] = field(default_factory=dict)
