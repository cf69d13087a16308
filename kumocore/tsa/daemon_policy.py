"""KumoMTA's tsa-daemon policy in ``kumocore tsa serve``: ``require 'tsa'``, ``tsa_init``
and ``tsa_load_shaping_data``.

KumoMTA's daemon (crates/tsa-daemon) evaluates its policy, asks ``tsa_load_shaping_data``
for the shaping data (a ``kumo.shaping.load`` result), runs ``tsa_init`` once, reads its
saved state, and then asks ``tsa_load_shaping_data`` again every 30 seconds, keeping the
previous data when that fails. ``tsa_init`` calls the two functions of the ``tsa`` module,
which only the daemon's policy can load:

* ``tsa.start_http_listener { listen, trusted_hosts, ... }`` — the options of
  ``kumo.start_http_listener`` that KumoMTA's daemon takes
  (:data:`~kumocore.http.service.SERVICE_LISTENER_OPTIONS`);
* ``tsa.configure_tsa_db_path(PATH)`` — where the state is kept. KumoMTA writes it to
  ``PATH.state`` (its sqlite file at ``PATH`` is only read to import older state); kumocore
  keeps its own JSON state there (:mod:`kumocore.tsa.state_file`), since no node reads
  the file. ``':memory:'`` keeps the state in memory only, as in KumoMTA.

:class:`TsaModule` is the plugin that contributes ``kumo.tsa`` (``require 'tsa'`` finds it
there, see bridge.lua); :class:`ShapingData` runs ``tsa_load_shaping_data`` and hands the
rules to the automation engine through the shaping helper's own entry point, so both
policy styles run the same engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from kumocore import hookimpl, policy_function
from kumocore.config.http_listener import HttpListenerConfig
from kumocore.config.listener_vault import keep_listener
from kumocore.errors import ConfigError, PolicyError
from kumocore.http.service import ServicePolicyModule
from kumocore.policy.custom_events import custom_event_source

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

log = structlog.get_logger("kumocore.tsa")

INIT_EVENT = "tsa_init"
SHAPING_EVENT = "tsa_load_shaping_data"
#: The events of KumoMTA's daemon policy, called by name (they are not hooks).
DAEMON_EVENTS = (INIT_EVENT, SHAPING_EVENT)
#: Seconds between two ``tsa_load_shaping_data`` calls (KumoMTA's shaping updater).
SHAPING_RELOAD_INTERVAL = 30.0
#: ``shaping:setup_with_automation``'s entry point, reused for the event's shaping data.
SHAPING_AUTOMATION = "policy_extras.shaping_automation"


class TsaModule(ServicePolicyModule):
    """The ``tsa`` module: what the policy's ``tsa_init`` asked for."""

    init_event = INIT_EVENT

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[HttpListenerConfig] = []
        self.db_path: str | None = None

    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        return {
            "tsa.start_http_listener": self.start_http_listener,
            "tsa.configure_tsa_db_path": self.configure_tsa_db_path,
        }

    @policy_function(table=True)
    def start_http_listener(self, **options: Any) -> Awaitable[None] | None:
        """Record one listener; it starts once ``tsa_init`` has run and the state is read."""
        function = "tsa.start_http_listener"
        return keep_listener(self.listeners, self.http_listener(options, function), function)

    @policy_function(table=False)
    def configure_tsa_db_path(self, path: Any) -> None:
        function = "tsa.configure_tsa_db_path"
        self.not_started(function)
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{function}: PATH must be a file name, got {path!r}")
        if path.startswith("file:"):
            raise ConfigError(
                f"{function}: sqlite URI file names ({path!r}) are not "
                "supported by kumocore; give a path, or ':memory:'"
            )
        self.db_path = path

    def state_file(self) -> str | None:
        """Where the state is kept: ``PATH.state``; ``''`` for ``':memory:'``; None when
        the policy did not say."""
        if self.db_path is None:
            return None
        return "" if self.db_path == ":memory:" else f"{self.db_path}.state"


async def call_event(runtime: Runtime, name: str) -> tuple[bool, Any]:
    """Run the policy's handler of ``name`` (no arguments): (whether it has one, its
    answer)."""
    source = custom_event_source(runtime.pm, name)
    if source is None:
        return False, None
    try:
        return True, await source.call_custom_event(name)
    except (ConfigError, PolicyError):
        raise
    except Exception as exc:
        raise PolicyError(f"in the {name} event: {exc}", where=runtime.policy_path) from exc


def has_handler(runtime: Runtime, name: str) -> bool:
    return custom_event_source(runtime.pm, name) is not None


class ShapingData:
    """The rules of ``tsa_load_shaping_data``'s answer, kept current in the engine."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.handle: int | None = None
        self.rule_count = 0

    async def load(self) -> None:
        """Ask the policy for the shaping data; give new data's rules to the engine."""
        found, value = await call_event(self.runtime, SHAPING_EVENT)
        if not found:
            raise ConfigError(f"the policy registers no {SHAPING_EVENT} handler")
        handle = value.get("automation_handle") if isinstance(value, Mapping) else None
        if not isinstance(handle, int) or isinstance(handle, bool):
            raise ConfigError(
                f"{SHAPING_EVENT}: the handler must return the shaping data of "
                f"kumo.shaping.load, got {_describe(value)}"
            )
        if handle == self.handle:
            return  # the same data (kumo.memoize answered from its cache)
        # The policy's own function table: its shaping.load made the data behind `handle`.
        functions = self.runtime.kumo.functions
        if SHAPING_AUTOMATION not in functions:
            raise ConfigError(
                f"{SHAPING_EVENT}: the shaping helper's automation is not "
                "installed (the lua_policy plugin provides it)"
            )
        # 'local': this service matches the records and keeps the actions itself, as
        # KumoMTA's daemon does. Called again, it swaps the engine's rules.
        result = functions[SHAPING_AUTOMATION](handle, ["local"], ["local"])
        self.handle, self.rule_count = handle, int(result.get("rule_count", 0))
        log.info("automation rules loaded", handler=SHAPING_EVENT, rules=self.rule_count)

    async def keep_loading(self, stop: asyncio.Event) -> None:
        """Ask again every :data:`SHAPING_RELOAD_INTERVAL` seconds until ``stop``; a
        failure is logged and the rules in force stay."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), SHAPING_RELOAD_INTERVAL)
                return
            except TimeoutError:
                pass
            try:
                await self.load()
            except Exception as exc:
                log.error(
                    "shaping data not reloaded; keeping the rules in force",
                    handler=SHAPING_EVENT,
                    error=str(exc) or type(exc).__name__,
                )


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return f"a table with {', '.join(sorted(map(str, value))) or 'no keys'}"
    return f"a {type(value).__name__}"
