"""Failed ``kumo.memoize`` computations: what the other callers are told, and for how long.

KumoMTA's memoize cache (its ``lruttl`` crate) stores a failed population like a value, for
a fixed 60 seconds whatever the cache's ``ttl``: until then every caller of that key gets
the same error at once, without calling the function again; after that the next caller
computes afresh. The entry takes a place in the cache (it counts toward ``capacity``) and,
with ``invalidate_with_epoch``, belongs to the epoch it was computed in.

The caller whose computation failed sees its own error unchanged (naming the policy line
that failed). The callers that waited for it, and those that come while it is remembered,
get it as :func:`failure_error` shapes it: a Python exception (a Python policy's function,
``kumo.reject``) as it is, a Lua error value as an error naming the cache with the same
text. Each of them raises a copy (:meth:`Failure.fresh`), so that one remembered error
raised many times does not gather every raise's traceback.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from kumocore import ConfigError

__all__ = ["FAILURE_TTL", "Failure", "failure_error", "fresh_error"]

#: Seconds a failed computation is remembered (lruttl's fixed time for a failed entry).
FAILURE_TTL = 60.0


def failure_error(name: str, error: object) -> BaseException:
    """The exception that stands for ``error``, how the computation of cache ``name`` failed.

    Called while the failing Lua call is still running: a Lua error value is read (its
    text) here, never later, because lupa ties such values to the running coroutine.
    """
    if isinstance(error, BaseException):
        return error
    prefix, text = f"kumo.memoize '{name}': ", str(error)
    failure = ConfigError(text if text.startswith(prefix) else prefix + text)
    # A failed kumo.* call's exception (the bridge's KumoCallError.exc) stays the cause.
    failure.__cause__ = getattr(error, "exc", None)
    return failure


@dataclass(frozen=True, slots=True)
class Failure:
    """A cache entry that records a failed computation (see the module's doc)."""

    error: BaseException

    def fresh(self) -> BaseException:
        """A copy of the error to raise for one more caller."""
        return fresh_error(self.error)


def fresh_error(error: BaseException) -> BaseException:
    """``error`` without a traceback, copied when its class allows (most do; one whose
    constructor needs more than its ``args``, such as a Rejection, is reused)."""
    try:
        raised = copy.copy(error)
    except Exception:  # a constructor that cannot be called with args alone
        raised = error
    raised.__cause__ = error.__cause__
    return raised.with_traceback(None)
