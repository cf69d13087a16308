"""kumocore-local-logs: KumoMTA's ``kumo.configure_local_logs`` for kumocore.

Each ``configure_local_logs { log_dir = ..., ... }`` call in the policy's ``init`` adds one
sink; the server collects them with ``kumo_register_log_sinks`` and feeds them through its
log dispatcher. See ``docs/logging.md``.

Owns the local log files (segments, compression, rotation). It does not own which records
exist or when they are written (kumocore's journal and log dispatcher).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore import ConfigError, hookimpl, policy_function
from kumocore_local_logs.options import LocalLogsConfig, parse_options
from kumocore_local_logs.sink import LocalLogSink

__all__ = ["LocalLogSink", "LocalLogsConfig", "LocalLogsPlugin", "parse_options"]


class LocalLogsPlugin:
    """One instance per plugin manager: the sinks it configured belong to that manager."""

    def __init__(self) -> None:
        self.sinks: list[LocalLogSink] = []

    def configure(self, **options: Any) -> LocalLogSink:
        """Validate ``options`` and add a sink (what ``kumo.configure_local_logs`` does)."""
        config = parse_options(options)
        for directory in config.all_dirs():
            if directory.exists() and not directory.is_dir():
                raise ConfigError(f"configure_local_logs: log_dir {str(directory)!r} "
                                  "exists and is not a directory")
        for sink in self.sinks:
            if sink.config.log_dir.resolve() == config.log_dir.resolve():
                raise ConfigError(f"configure_local_logs: log_dir {str(config.log_dir)!r} "
                                  "is already configured")
        sink = LocalLogSink(config)
        self.sinks.append(sink)
        return sink

    @hookimpl(trylast=True)
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        @policy_function(table=True)
        def configure_local_logs(**options: Any) -> None:
            self.configure(**options)

        return {"configure_local_logs": configure_local_logs}

    @hookimpl(trylast=True)
    def kumo_register_log_sinks(self) -> list[LocalLogSink]:
        # Asked once the server is about to log, which is when KumoMTA marks leftover
        # segments done; a sink also prepares itself lazily on its first batch.
        for sink in self.sinks:
            sink.start()
        return list(self.sinks)

    @hookimpl(trylast=True)
    async def kumo_shutdown(self) -> None:
        # The dispatcher closes sinks after draining them; closing is idempotent, so this
        # only matters when the sinks were never handed to a dispatcher.
        for sink in self.sinks:
            await sink.close()
