"""``kumo.set_memory_*``, ``kumo.get_memory_*``, ``kumo.set_lruttl_cache_capacity`` and
``kumo.suspend_delivery_when_spool_unhealthy``, from kumocore's public API.

The state behind them is the core's (:mod:`kumocore.node.memory`,
:mod:`kumocore.node.cache_capacity`, :mod:`kumocore.spool.health`); this plugin only names
them for policies, so Python policies get them under the same names. Call them from
``pre_init`` or ``init``, as KumoMTA's documentation shows; a limit set while the node
runs applies at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kumocore


def memory_functions() -> dict[str, Callable[..., Any]]:
    return {
        "set_memory_hard_limit": kumocore.set_memory_hard_limit,
        "set_memory_soft_limit": kumocore.set_memory_soft_limit,
        "set_memory_low_thresh": kumocore.set_memory_low_thresh,
        "get_memory_hard_limit": kumocore.get_memory_hard_limit,
        "get_memory_soft_limit": kumocore.get_memory_soft_limit,
        "get_memory_low_thresh": kumocore.get_memory_low_thresh,
        "suspend_delivery_when_spool_unhealthy": kumocore.suspend_delivery_when_spool_unhealthy,
        "set_lruttl_cache_capacity": kumocore.set_lruttl_cache_capacity,
    }
