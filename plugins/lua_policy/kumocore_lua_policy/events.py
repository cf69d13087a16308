"""Which events a Lua policy may register, and KumoMTA's rules for registering them.

The events are read from the hook contract (:mod:`kumocore.hookspecs`): every hook except
the ``kumo_register_*`` providers, named without the ``kumo_`` prefix, so a hook added to
the contract is available to Lua without touching this plugin.

KumoMTA's rules (docs/reference/kumo/on.md): registering an event again replaces the
handler — the last registration wins — except for the events KumoMTA declares ``Multiple``
(``declare_event!`` in its crates: ``get_queue_config``, ``get_acl_definition``,
``should_enqueue_log_record``, ``pre_init``, ``validate_config``, ``requeue_message``,
``throttle_insert_ready_queue``), whose handlers all stay and run in registration order
until one returns a value: a handler without ``return`` lets the next one run, any returned
value — an explicit ``nil`` included — ends the call (``LuaPolicy.call_event``).

Any other name is a *custom event* (KumoMTA: "EVENT can be any string"): a constructor
that another feature calls by name, such as ``make.webhook`` for a log hook or the
constructor of a ``custom_lua`` delivery protocol. Those are looked up and called with
:meth:`LuaPolicy.call_custom_event <kumocore_lua_policy.policy.LuaPolicy.call_custom_event>`.
A name that is not dotted and is *close* to a built-in event's name is refused with a
did-you-mean hint: it is far more likely a typo than a custom event.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kumocore import hookspecs

#: Events where every registered handler is kept (called in order until one returns a value,
#: ``nil`` included).
MULTI_HANDLER_EVENTS = frozenset(
    {"get_queue_config", "should_enqueue_log_record", "pre_init", "validate_config",
     "get_acl_definition", "requeue_message", "throttle_insert_ready_queue"}
)

#: KumoMTA's names for events that kumocore's contract names differently.
ALIASES = {"smtp_server_rcpt_to": "smtp_server_mail_rcpt_to"}

#: ``log_disposition_<hook name>``: the event of ``configure_log_disposition_hook``.
DISPOSITION_PREFIX = "log_disposition_"

#: KumoMTA events kumocore does not emit (yet): a clear message instead of a typo hint.
#: (None today: ``smtp_server_split_transaction`` was the last.)
UNSUPPORTED_KUMOMTA_EVENTS: frozenset[str] = frozenset()
#: Why, for the events a policy is likely to port, with what to use instead.
UNSUPPORTED_REASONS: dict[str, str] = {}


@dataclass(frozen=True)
class EventSpec:
    """One event a policy can register: its Lua name, hook and the hook's arguments."""

    name: str
    hook: str
    argnames: tuple[str, ...]
    firstresult: bool
    #: A name no hook has: a constructor other features call (``make.webhook``).
    custom: bool = False

    @property
    def multi(self) -> bool:
        return self.name in MULTI_HANDLER_EVENTS


def event_specs() -> dict[str, EventSpec]:
    """Every event of the hook contract, by Lua name."""
    specs: dict[str, EventSpec] = {}
    marker = f"{hookspecs.PROJECT}_spec"
    for hook, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        options = getattr(fn, marker, None)
        if options is None or not hook.startswith("kumo_") or hook.startswith("kumo_register_"):
            continue
        name = hook.removeprefix("kumo_")
        argnames = tuple(inspect.signature(fn).parameters)
        specs[name] = EventSpec(name, hook, argnames, bool(options.get("firstresult")))
    return specs


class EventRegistry:
    """The handlers a policy registered with ``kumo.on``; closed once the policy is loaded."""

    def __init__(
        self,
        specs: dict[str, EventSpec] | None = None,
        *,
        is_function: Callable[[Any], bool] = callable,
    ) -> None:
        self.specs = event_specs() if specs is None else specs
        self._is_function = is_function
        self._handlers: dict[str, list[Any]] = {}
        self._closed = False

    def on(self, name: Any, handler: Any, *_ignored: Any) -> None:
        """``kumo.on(name, fn)``."""
        if not isinstance(name, str):
            raise ValueError(f"kumo.on: the event name must be a string, got {name!r}")
        spec = self.spec(name)
        if not self._is_function(handler):
            raise ValueError(f"kumo.on('{name}', ...): the handler must be a function")
        if self._closed and not (spec.custom or spec.name in self._handlers):
            # After the load only events already handled are hooked (and custom ones are
            # called by name): a first handler registered now would never run. A further
            # one is taken, from the next call on, as KumoMTA's Lua context takes it (its
            # queue helper requires the sources helper inside validate_config).
            raise ValueError(
                f"kumo.on('{name}', ...) must be called while the policy loads (at its top "
                "level), not from inside an event handler: the policy handles no "
                f"'{spec.name}' event, so this handler would never run")
        if spec.multi:
            self._handlers.setdefault(spec.name, []).append(handler)
        else:
            self._handlers[spec.name] = [handler]  # the last registration wins

    def spec(self, name: str) -> EventSpec:
        """The event called ``name`` (or KumoMTA's alias of it); else a helpful error."""
        spec = self.specs.get(ALIASES.get(name, name))
        if spec is not None:
            return spec
        if name.startswith(DISPOSITION_PREFIX) and len(name) > len(DISPOSITION_PREFIX):
            # KumoMTA's disposition hook events: named after the hook, called by its sink.
            return EventSpec(name, "", ("msg", "log_record"), False, custom=True)
        if "." in name:
            # A policy's own event (kumo.spawn_task{event_name='my.task'}): no hook; called
            # by name with one argument, its answer returned.
            return EventSpec(name, "", ("args",), True, custom=True)
        if name in UNSUPPORTED_KUMOMTA_EVENTS:
            reason = UNSUPPORTED_REASONS.get(name)
            raise ValueError(f"kumo.on: KumoMTA's '{name}' event is not supported by kumocore "
                             f"yet{': ' + reason if reason else ''}")
        if not name:
            raise ValueError("kumo.on: the event name must not be empty")
        if "." not in name:
            known = sorted([*self.specs, *ALIASES, *UNSUPPORTED_KUMOMTA_EVENTS])
            hint = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            if hint:
                raise ValueError(f"kumo.on: unknown event '{name}'; did you mean '{hint[0]}'? "
                                 "(a custom event needs a name not this close to a built-in "
                                 "one, such as 'make.my_event')")
        return EventSpec(name, "", (), firstresult=True, custom=True)

    def close(self) -> None:
        self._closed = True

    def handlers(self, name: str) -> list[Any]:
        return list(self._handlers.get(name, ()))

    def registered(self) -> list[EventSpec]:
        """The built-in events with at least one handler, in contract order."""
        return [spec for name, spec in self.specs.items() if name in self._handlers]

    def custom_events(self) -> list[str]:
        """The custom event names with a handler, sorted."""
        return sorted(name for name in self._handlers if name not in self.specs)
