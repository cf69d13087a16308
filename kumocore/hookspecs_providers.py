"""The provider hooks of kumocore's contract: what a plugin contributes, not what it decides.

Part of :mod:`kumocore.hookspecs` (which imports every hook here, so pluggy registers them
with the rest; read that module's docstring for the grammar). Providers are
``kumo_register_<things>`` hooks: every implementation runs and the results are
flattened. They give the ``kumo`` module its functions, the policy loaders, the config
epoch, and the backends: spool kinds, log sinks and throttle stores (each a ``Protocol``
with an in-memory version in core for tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kumocore.hookmarks import hookspec

if TYPE_CHECKING:
    from kumocore.logs.sink import LogSink
    from kumocore.policy.kumo_api import Kumo
    from kumocore.spool.base import SpoolFactory
    from kumocore.throttle.store import ThrottleStore

#: ``loader(path, kumo)`` → the policy plugin object, or an awaitable of it.
PolicyLoader = Callable[[str, "Kumo"], Any]


@hookspec
def kumo_register_policy_functions() -> Mapping[str, Callable[..., Any]]:
    """Contribute functions to the ``kumo`` module seen by Lua and Python policies.

    Return ``{"configure_local_logs": fn, "dns.lookup_mx": fn, ...}``; dotted names create
    sub-tables (``kumo.dns``). Decorate functions that take one options table with
    :func:`kumocore.policy_function` ``(table=True)``. A function may be ``async``: Python
    policies await it, and the Lua bridge suspends the calling coroutine until it is done.
    All implementations run; a later duplicate name is an error naming both plugins.

    No Lua event: a provider hook for Python plugins (Lua policies use what it provides
    through ``kumo.*`` functions).
    """
    raise NotImplementedError


@hookspec
def kumo_register_policy_loaders() -> Mapping[str, PolicyLoader]:
    """Map a policy file suffix (``".lua"``) to a loader ``loader(path, kumo) -> plugin``.

    The loader may be async (a Lua policy's top-level code may look up DNS). The returned
    plugin object carries ``@hookimpl`` methods and is registered as the operator's policy,
    so it runs before every other plugin. ``.py`` is built in. All implementations run.

    No Lua event: a provider hook for Python plugins (Lua policies use what it provides
    through ``kumo.*`` functions).
    """
    raise NotImplementedError


@hookspec
def kumo_register_config_epoch() -> Callable[[], int]:
    """Contribute a reader of your *configuration epoch*: a counter that changes when the
    configuration you serve changes (a monitored file was edited, a reload was asked for).

    A queue or egress path configuration made with ``refresh_strategy = 'Epoch'`` stays in
    use until the epoch changes, instead of being asked for again every
    ``refresh_interval`` (KumoMTA's configuration monitoring). With several providers the
    epoch is the sum of their readers, so any one of them changing counts. The reader is
    called whenever such a configuration is about to be reused, so it must be cheap.

    No Lua event: a provider hook for Python plugins. The Lua policy plugin provides the
    epoch bumped by its file monitor and by ``kumo.bump_config_epoch()``.
    """
    raise NotImplementedError


@hookspec
def kumo_register_config_epoch_bump() -> Callable[[], object]:
    """Contribute a function that bumps your configuration epoch (the one your
    ``kumo_register_config_epoch`` reader reads), as if your monitored configuration had
    changed.

    Called when the operator asks for a bump (``POST /api/admin/bump-config-epoch``, on
    every worker of the node); each provider's function is called once per request, and
    its return value is ignored. Without any provider such a request is refused (there is
    no epoch to bump).

    No Lua event: a provider hook for Python plugins. A Lua policy bumps the epoch with
    ``kumo.bump_config_epoch()``; the Lua policy plugin provides this hook for that epoch.
    """
    raise NotImplementedError


@hookspec
def kumo_register_spool_kinds() -> Mapping[str, SpoolFactory]:
    """Map a ``kumo.define_spool{kind=...}`` name to a factory of spools.

    Example: ``{"RocksDB": make_rocks_spool}``. All implementations run, results merged.

    No Lua event: a provider hook for Python plugins (Lua policies use what it provides
    through ``kumo.*`` functions).
    """
    raise NotImplementedError


@hookspec
def kumo_register_log_sinks() -> list[LogSink]:
    """Return the log sinks this plugin wants to receive every log record.

    Called after ``init`` (so sinks configured by the policy are included). Each sink is
    fed from its own bounded buffer: a slow sink never stalls reception.

    No Lua event: a provider hook for Python plugins (Lua policies use what it provides
    through ``kumo.*`` functions).
    """
    raise NotImplementedError


@hookspec
def kumo_register_throttle_stores() -> list[ThrottleStore]:
    """Return configured shared throttle stores (e.g. Redis), first one wins.

    Called after ``init``. The in-process store is the built-in fallback (``trylast``);
    specs with the ``local:`` prefix always use it.

    No Lua event: a provider hook for Python plugins (Lua policies use what it provides
    through ``kumo.*`` functions).
    """
    raise NotImplementedError
