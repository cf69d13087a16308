"""The core's own plugin: the ``kumo.*`` functions that define the server, and defaults.

It is registered before every other plugin, so it is called last: each lookup here is the
fallback when neither the policy nor a third-party plugin answered (KumoMTA's defaults).
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import structlog

from kumocore.errors import DISCONNECT_DISPOSITIONS, ConfigError, PolicyError, Rejection
from kumocore.hookspecs import hookimpl
from kumocore.policy.hooks import UNSPECIFIED
from kumocore.policy.jsonable import jsonable
from kumocore.policy.policyfn import policy_function
from kumocore.spool.base import MemorySpool, SpoolFactory

if TYPE_CHECKING:
    from kumocore.config import (
        EgressPathConfig,
        EgressPool,
        EgressSource,
        ListenerDomain,
        QueueConfig,
    )
    from kumocore.dns.lists import NamedResolvers
    from kumocore.loghooks.disposition import DispositionHookSink
    from kumocore.loghooks.sink import LogHookSink
    from kumocore.logs.sink import LogSink
    from kumocore.policy.kumo_api import Kumo
    from kumocore.policy.policy_host import PolicyHost

policy_log = structlog.get_logger("kumocore.policy")


def _reply(who: str, code: Any, message: Any) -> tuple[int, str]:
    """The checked ``(code, text)`` of ``kumo.reject``/``kumo.disconnect``."""
    if not isinstance(message, str):  # nil became the reply text "None"
        raise ConfigError(f"{who}: the reply text must be a string, got {message!r}")
    try:
        number = int(code)
    except (TypeError, ValueError):
        raise ConfigError(f"{who}: the code must be a number, got {code!r}") from None
    return number, message


def _reject(code: int, message: str) -> None:
    """``kumo.reject(code, text)``: refuse with that SMTP reply."""
    raise Rejection(*_reply("kumo.reject", code, message))


def _disconnect(code: int, message: str, disposition: Any = None) -> None:
    """``kumo.disconnect(code, text[, disposition])``: refuse and (by default) end the SMTP
    session; ``disposition`` is ``ForceDisconnect`` (default), ``FollowWith421``, ``If421``."""
    disposition = "ForceDisconnect" if disposition is None else disposition
    if disposition not in DISCONNECT_DISPOSITIONS:
        raise ConfigError("kumo.disconnect: expected one of 'If421', 'FollowWith421' or "
                          f"'ForceDisconnect', but got {disposition!r}")
    number, text = _reply("kumo.disconnect", code, message)
    raise Rejection(number, text, disposition=disposition)


def _json_encode(value: Any) -> str:
    # A Lua table with number keys ({[2] = 'x'}) is an object with string keys, as in KumoMTA.
    return orjson.dumps(value, default=jsonable, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_encode_pretty(value: Any) -> str:
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(value, default=jsonable, option=options).decode()


def _json_decode(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"kumo.json_decode: invalid JSON: {exc}") from exc


#: The attribute of each ``kumo.log_*`` function that logs an already rendered record,
#: ``fn.with_location(where, text)``: the Lua bridge renders the arguments as Lua's
#: ``tostring`` would and finds the calling file:line on the Lua stack, then calls it.
LOG_WITH_LOCATION = "with_location"


def _log_text(value: Any) -> str:
    """An argument of a Python caller as log text: ``str(value)``; bytes as text, each byte
    that is not part of valid UTF-8 written ``\\xNN`` (as KumoMTA writes a Lua string's)."""
    if not isinstance(value, bytes | bytearray):
        return str(value)
    data, out = bytes(value), []
    while data:
        try:
            out.append(data.decode())
            break
        except UnicodeDecodeError as exc:
            out.append(data[: exc.start].decode())
            out.extend(f"\\x{b:02X}" for b in data[exc.start : exc.end])
            data = data[exc.end :]
    return "".join(out)


def _policy_logger(level: str) -> Callable[..., None]:
    """``kumo.log_<level>(...)``: one diagnostic record ``file:line: arg arg ...``, naming
    the caller's file and line as KumoMTA does (``./policy.lua:3: hello true 42``)."""
    log = getattr(policy_log, level)

    def with_location(where: str, text: str) -> None:
        log(f"{where}: {text}")

    def emit(*parts: Any) -> None:
        caller = sys._getframe(1)
        with_location(f"{caller.f_code.co_filename}:{caller.f_lineno}",
                      " ".join(_log_text(p) for p in parts))

    emit.__name__ = f"log_{level}"
    setattr(emit, LOG_WITH_LOCATION, with_location)
    return emit


def load_python_policy(path: str, kumo: Kumo) -> object:
    """Import a Python policy module (a module of ``@hookimpl`` functions)."""
    module_name = f"kumocore_policy_{abs(hash(path)):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load Python policy {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise PolicyError(f"syntax error: {exc.msg}", where=f"{path}:{exc.lineno}") from exc
    except Exception as exc:
        raise PolicyError(f"{type(exc).__name__}: {exc}", where=_where(path, exc)) from exc
    return module


def _where(path: str, exc: BaseException) -> str:
    """``file:line`` of the deepest frame of ``exc`` inside the policy file."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == path:
            line = lineno
    return f"{path}:{line}" if line else path


def _runtime_io_functions(
    runtime: PolicyHost, resolvers: NamedResolvers
) -> dict[str, Callable[..., Any]]:
    """Tasks, HTTP, secrets, throttles, injection and DNS lists (issue 16, item 6)."""
    from kumocore.dkim.verify import use_resolvers
    from kumocore.dmarc.policy import make_dmarc_functions
    from kumocore.dns.lists import make_dns_list_functions
    from kumocore.http.client import make_http_client_functions
    from kumocore.http.websocket_client import make_websocket_functions
    from kumocore.loghooks.amqp_client import make_amqp_functions
    from kumocore.loghooks.nats_client import make_nats_functions
    from kumocore.policy.secrets import make_secrets_functions
    from kumocore.policy.tasks import make_task_functions
    from kumocore.reception.inject_api import make_inject_functions
    from kumocore.reports.dsn import make_dsn_functions
    from kumocore.spf.policy import make_spf_functions
    from kumocore.throttle.policy import make_throttle_functions

    use_resolvers(resolvers)  # msg:dkim_verify() looks keys up through them
    return {
        **make_task_functions(runtime),
        **make_http_client_functions(),
        **make_websocket_functions(),
        **make_secrets_functions(),
        **make_throttle_functions(runtime),
        **make_inject_functions(runtime),
        **make_dsn_functions(runtime),
        **make_dns_list_functions(resolvers),
        **make_spf_functions(resolvers),
        **make_dmarc_functions(resolvers),
        **make_amqp_functions(),
        **make_nats_functions(),
    }


class CorePlugin:
    """Defines the server from policy calls and supplies KumoMTA's defaults."""

    def __init__(self, runtime: PolicyHost) -> None:
        self.runtime = runtime
        self.log_hooks: list[LogHookSink] = []
        self.disposition_hooks: list[DispositionHookSink] = []

    # ------------------------------------------------------------- definitions
    @policy_function(table=True)
    def define_spool(self, **options: Any) -> None:
        from kumocore.config import SpoolDefinition

        spool = SpoolDefinition.from_options(options)
        self.runtime.config.spools[spool.name] = spool

    @policy_function(table=True)
    def start_esmtp_listener(self, **options: Any) -> Awaitable[None] | None:
        from kumocore.config import EsmtpListenerConfig

        config = EsmtpListenerConfig.from_options(options)
        return _with_vault_sources(config, self.runtime.config.esmtp_listeners.append)

    @policy_function(table=True)
    def start_http_listener(self, **options: Any) -> Awaitable[None] | None:
        from kumocore.config import HttpListenerConfig

        config = HttpListenerConfig.from_options(options)
        return _with_vault_sources(config, self.runtime.config.http_listeners.append)

    @policy_function(table=True)
    def define_egress_source(self, **options: Any) -> EgressSource:
        source = self.make_egress_source(**options)
        _not_builtin("define_egress_source", source.name)
        self.runtime.config.egress_sources[source.name] = source
        return source

    @policy_function(table=True)
    def define_egress_pool(self, **options: Any) -> EgressPool:
        pool = self.make_egress_pool(**options)
        _not_builtin("define_egress_pool", pool.name)
        self.runtime.config.egress_pools[pool.name] = pool
        return pool

    @policy_function(table=True)
    def configure_log_hook(self, **options: Any) -> None:
        """Each matching log record becomes a spooled message (kumocore.loghooks)."""
        from kumocore.loghooks.options import parse_options
        from kumocore.loghooks.sink import LogHookSink

        config = parse_options(options)
        if any(hook.config.name == config.name for hook in self.log_hooks):
            raise ConfigError(f"configure_log_hook: a hook named {config.name!r} "
                              "is already configured")
        self.log_hooks.append(LogHookSink(self.runtime, config))

    @policy_function(table=True)
    def configure_log_disposition_hook(self, **options: Any) -> None:
        """The policy's ``log_disposition_<name>`` handler sees each record about a
        message while it still exists (kumocore.loghooks.disposition)."""
        from kumocore.loghooks.disposition import DispositionHookSink, parse_disposition_options
        from kumocore.loghooks.policy_dispositions import PolicyDispositions

        config = parse_disposition_options(options)
        if any(hook.config.name == config.name for hook in self.disposition_hooks):
            raise ConfigError(f"configure_log_disposition_hook: a hook named {config.name!r} "
                              "is already configured")
        sink = DispositionHookSink(PolicyDispositions(self.runtime), config)
        sink.check_handlers()
        self.disposition_hooks.append(sink)

    # ------------------------------------------------------------- constructors
    @policy_function(table=True)
    def make_egress_source(self, **options: Any) -> EgressSource:
        from kumocore.config import EgressSource

        return EgressSource.from_options(options)

    @policy_function(table=True)
    def make_egress_pool(self, **options: Any) -> EgressPool:
        from kumocore.config import EgressPool

        return EgressPool.from_options(options)

    @policy_function(table=True)
    def make_egress_path(self, **options: Any) -> EgressPathConfig:
        from kumocore.config import EgressPathConfig
        from kumocore.delivery.dane import require_validating_resolver

        path = EgressPathConfig.from_options(options)
        if path.enable_dane:
            require_validating_resolver(self.runtime.resolver)
        return path

    @policy_function(table=True)
    def make_queue_config(self, **options: Any) -> QueueConfig:
        from kumocore.config import QueueConfig

        return QueueConfig.from_options(options)

    @policy_function(table=True)
    def make_listener_domain(self, **options: Any) -> ListenerDomain:
        from kumocore.config import ListenerDomain

        return ListenerDomain.from_options(options)

    # ------------------------------------------------------------- providers
    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        from kumocore.dkim.policy import make_dkim_functions
        from kumocore.dns.policy import make_dns_functions
        from kumocore.policy.runtime_functions import make_runtime_functions

        functions: dict[str, Callable[..., Any]] = {
            "define_spool": self.define_spool,
            "start_esmtp_listener": self.start_esmtp_listener,
            "start_http_listener": self.start_http_listener,
            "define_egress_source": self.define_egress_source,
            "define_egress_pool": self.define_egress_pool,
            "make_egress_source": self.make_egress_source,
            "make_egress_pool": self.make_egress_pool,
            "make_egress_path": self.make_egress_path,
            "make_queue_config": self.make_queue_config,
            "make_listener_domain": self.make_listener_domain,
            "configure_log_hook": self.configure_log_hook,
            "configure_log_disposition_hook": self.configure_log_disposition_hook,
            "reject": _reject,
            "disconnect": _disconnect,
            "json_encode": _json_encode,
            "json_encode_pretty": _json_encode_pretty,
            "json_decode": _json_decode,
            "json_parse": _json_decode,
        }
        for level in ("debug", "info", "warn", "error"):
            functions[f"log_{level}"] = _policy_logger("warning" if level == "warn" else level)
        from kumocore.dns.lists import NamedResolvers

        # One set of named resolvers for every kumo.dns.* lookup taking a resolver name.
        resolvers = NamedResolvers(self.runtime.resolver)
        functions.update(make_dns_functions(resolvers))
        from kumocore.dns.mx_limits import make_mx_limit_functions

        functions.update(make_mx_limit_functions(self.runtime.resolver.mx_limits))
        functions.update(make_dkim_functions())
        functions.update(make_runtime_functions(self.runtime))
        functions.update(_runtime_io_functions(self.runtime, resolvers))
        from kumocore.admin.ready_q_policy import make_ready_q_functions

        functions.update(make_ready_q_functions(self.runtime))  # kumo.api.admin.suspend_ready_q
        from kumocore.http.inject_policy import make_inject_api_functions

        functions.update(make_inject_api_functions(self.runtime))  # kumo.api.inject.inject_v1
        from kumocore.xfer.policy import make_xfer_functions

        functions.update(make_xfer_functions(self.runtime))  # kumo.xfer.*
        from kumocore.http.acl_policy import make_aaa_functions

        functions.update(make_aaa_functions(self.runtime))  # kumo.aaa.* (HTTP access control)
        return functions

    @hookimpl
    def kumo_register_log_sinks(self) -> list[LogSink]:
        return [*self.log_hooks, *self.disposition_hooks]

    @hookimpl
    def kumo_register_policy_loaders(self) -> Mapping[str, Callable[[str, Kumo], object]]:
        return {".py": load_python_policy}

    @hookimpl
    def kumo_register_spool_kinds(self) -> Mapping[str, SpoolFactory]:
        from kumocore.spool.localdisk import LocalDiskSpool

        return {"Memory": MemorySpool, "LocalDisk": LocalDiskSpool}

    # ------------------------------------------------------------- default lookups
    @hookimpl(trylast=True)
    def kumo_get_egress_source(self, source_name: str) -> EgressSource | None:
        return self.runtime.config.egress_sources.get(source_name)

    @hookimpl(trylast=True)
    def kumo_get_egress_pool(self, pool_name: str) -> EgressPool | None:
        return self.runtime.config.egress_pools.get(pool_name)

    @hookimpl(trylast=True)
    def kumo_get_queue_config(self) -> QueueConfig:
        from kumocore.config import QueueConfig

        return QueueConfig.from_options({})

    @hookimpl(trylast=True)
    def kumo_get_egress_path_config(self) -> EgressPathConfig:
        from kumocore.config import EgressPathConfig

        return EgressPathConfig.from_options({})


ListenerT = TypeVar("ListenerT")


def _with_vault_sources(
    config: ListenerT, add: Callable[[ListenerT], None]
) -> Awaitable[None] | None:
    """``add(config)`` now, or (a key source in HashiCorp Vault) an awaitable that reads
    the secrets first: the listener's TLS code then finds them inline
    (kumocore.config.listener_vault)."""
    from kumocore.config.listener_vault import has_vault_sources, read_listener_vault_sources

    if not has_vault_sources(config):
        add(config)
        return None
    function = getattr(config, "options_for", "listener")

    async def read_then_add() -> None:
        add(await read_listener_vault_sources(config, function))

    return read_then_add()


def _not_builtin(function: str, name: str) -> None:
    """``unspecified`` is KumoMTA's built-in pool and source: never looked up, so a
    definition of it would be silently ignored."""
    if name == UNSPECIFIED:
        raise ConfigError(f"{function}: {UNSPECIFIED!r} is the built-in egress pool and "
                          "source of queues that name none; choose another name")
