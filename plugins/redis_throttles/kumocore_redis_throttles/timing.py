"""The operations of KumoMTA's ``redis_operation_latency`` this plugin's commands are
recorded as (``ping``, ``query`` for a plain command, ``script`` for a Lua script).

Each command is timed from the call until its reply or failure and recorded under the
service's label by kumocore's :func:`kumocore.timed_redis_operation` (imported here as
``timed``): the policies' ``redis.open`` handles are timed by the same function.
"""

from __future__ import annotations

from kumocore import timed_redis_operation as timed

__all__ = ["PING", "QUERY", "SCRIPT", "timed"]

PING = "ping"
QUERY = "query"
SCRIPT = "script"
