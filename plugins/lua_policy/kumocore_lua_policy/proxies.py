"""The Python side of the bridge's proxy tables: how Lua reads objects, dicts and messages.

A proxy is an empty Lua table with a metatable (see ``bridge.lua``); its metamethods call
the functions here with the Python object it stands for. Three kinds:

``object``  read-only fields of any Python object (``addr.domain``, ``mx.site_name``,
            ``tostring(addr)`` → ``user@domain``). Private names are never visible.
``map``     a live ``dict`` (``conn_meta``): ``conn_meta.x``, ``conn_meta:get_meta('x')``,
            ``conn_meta:set_meta('x', v)`` and ``pairs`` read and write the dict itself, so
            what one SMTP event stores is there for the next.
``message`` a :class:`kumocore.mail.message.Message`: ``msg:method(...)`` calls the method of
            the same name; a plain attribute (``msg:id()``, ``msg:sender()``) is returned.
            Other objects marked ``__kumo_methods__ = True`` (an HTTP client, a throttle)
            use it too.
``fields``  an object marked ``__kumo_fields__ = True`` (a MIME part): ``part.body`` reads
            a field, ``part:get_simple_structure()`` calls a method.
"""

from __future__ import annotations

import difflib
import inspect
import operator
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError, session_auth_info
from kumocore_lua_policy.arity import call_fitting, misfit
from kumocore_lua_policy.byte_strings import takes_bytes, wants_bytes
from kumocore_lua_policy.convert import Converter, public_fields
from kumocore_lua_policy.errors import scrub

Wrap = Callable[[Callable[..., Any], str], Any]
_NO_ALIASES: dict[str, str] = {}


def _is_public(name: Any) -> bool:
    return isinstance(name, str) and not name.startswith("_")


def _call_message_method(name: str, message: Any, *args: Any) -> Any:
    # A class may answer a Lua method under another Python name (Message answers
    # ``msg:recipient()`` with ``lua_recipient``: one address, or a list for a batch).
    attr = getattr(message, getattr(message, "__kumo_lua_names__", _NO_ALIASES).get(name, name))
    if callable(attr):
        try:
            return call_fitting(attr, args, {})
        except TypeError as exc:
            why = misfit(attr, args, {})
            if why is None:
                raise
            raise ConfigError(why) from exc
    if any(arg is not None for arg in args):
        raise ConfigError(f"takes no arguments (called with {len(args)} argument(s))")
    return attr


class ProxyHelpers:
    """The callables the bridge's metatables use; one instance per Lua runtime."""

    def __init__(self, conv: Converter, wrap: Wrap) -> None:
        self.conv = conv
        self.wrap = wrap

    def as_lua_table(self) -> dict[str, Callable[..., Any]]:
        return {
            "get_attr": self.get_attr,
            "fields": self.fields,
            "str": self.str,
            "map_get": self.map_get,
            "map_set": self.map_set,
            "map_keys": self.map_keys,
            "map_auth_info": self.map_auth_info,
            "message_method": self.message_method,
            "binop": self.binop,
            "member": self.member,
            "member_setter": self.member_setter,
        }

    # ------------------------------------------------------------------ objects
    def get_attr(self, obj: Any, name: Any) -> Any:
        """``proxy.name``: a field's value, or nil (like a table) for anything else."""
        if not _is_public(name):
            return None
        value = getattr(obj, name, None)
        if callable(value) and not _is_data(value):
            if getattr(type(obj), "lua_methods", False):
                # Objects made for policies (a Regex, a Time) offer methods: obj:name(...)
                caller = _method_caller(name)
                if wants_bytes(value):  # a method taking binary strings (file:write)
                    takes_bytes(caller)
                return self.wrap(caller, f"{type(obj).__name__}:{name}")
            return None  # methods stay in Python; Lua sees data only
        return self.conv.to_lua(value)

    def binop(self, op: str, left: Any, right: Any) -> Any:
        """``a == b``, ``a + b``, ``a - b`` on object proxies, with Python's operators."""
        if op == "eq":
            return bool(left == right)
        try:
            result = operator.add(left, right) if op == "add" else operator.sub(left, right)
        except TypeError:
            sign = "+" if op == "add" else "-"
            raise TypeError(f"cannot compute {type(left).__name__} {sign} "
                            f"{type(right).__name__}") from None
        return self.conv.to_lua(result)

    def fields(self, obj: Any) -> Any:
        return self.conv.to_lua(public_fields(obj))

    def str(self, obj: Any) -> str:
        """``tostring(proxy)``: the object's own ``__str__``, else its email, else repr."""
        own_str: Any = type(obj).__str__
        if own_str is not object.__str__:
            return str(obj)
        email = getattr(obj, "email", None)
        return email if isinstance(email, str) else repr(obj)

    # ------------------------------------------------------------------ maps
    def map_get(self, mapping: dict[Any, Any], key: Any) -> Any:
        return self.conv.to_lua(mapping.get(key))

    def map_set(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        if value is None:
            mapping.pop(key, None)  # assigning nil removes, as in a Lua table
            return
        try:
            mapping[key] = self.conv.from_lua(value)
        except Exception as exc:
            raise scrub(exc) from None
        finally:
            del value  # a Lua table tied to the running coroutine (see errors.scrub)

    def map_keys(self, mapping: dict[Any, Any]) -> Any:
        return self.conv.to_lua([key for key in mapping if isinstance(key, str | int)])

    def map_auth_info(self, mapping: dict[Any, Any]) -> Any:
        """``conn_meta:auth_info()``: the session's AuthInfo as a new table (a copy, as
        KumoMTA's: changing it changes nothing), ready for ``query_resource_access``."""
        return self.conv.to_lua(session_auth_info(mapping).to_dict())

    # ------------------------------------------------------------------ messages
    def message_method(self, message: Any, name: Any) -> Any:
        """The Lua function for ``msg:name(...)``; the bridge caches it per name."""
        if not _is_public(name) or not hasattr(message, name):
            # A ConfigError, not an AttributeError: a handler calling a method that does not
            # exist fails every message it sees, so `kumocore validate` counts it an error.
            raise ConfigError(_unknown_method(message, name))
        owner = "msg" if type(message).__name__ == "Message" else type(message).__name__
        caller = _method_caller(name)
        if wants_bytes(getattr(message, name)):  # binary content (builder:attach)
            takes_bytes(caller)
        return self.wrap(caller, f"{owner}:{name}")


    # ------------------------------------------------------------------ fields + methods
    def member(self, obj: Any, name: Any) -> Any:
        """``proxy.name``: a method as a Lua function (``obj:name()``), else the value."""
        if not _is_public(name):
            return None
        value = getattr(obj, name, None)
        if inspect.ismethod(value):
            caller = _method_caller(name)
            if wants_bytes(value):  # a method taking binary strings (part:replace_body)
                takes_bytes(caller)
            return self.wrap(caller, f"{type(obj).__name__}:{name}")
        return self.conv.to_lua(value)

    def member_setter(self, obj: Any, name: Any) -> Any:
        """``proxy.name = v`` for a name in the object's ``__kumo_settable__``: a Lua
        function assigning its (possibly binary) argument; nil for any other name."""
        if not _is_public(name) or name not in getattr(obj, "__kumo_settable__", ()):
            return None

        @takes_bytes
        def assign(value: Any) -> None:
            setattr(obj, name, value)

        return self.wrap(assign, f"{type(obj).__name__}.{name}")


def _method_caller(name: str) -> Callable[..., Any]:
    def call(message: Any, *args: Any) -> Any:
        return _call_message_method(name, message, *args)

    call.__name__ = name
    return call


def _is_data(value: Any) -> bool:
    """Callable values that are still data to Lua (a class instance with ``__call__``)."""
    return not (inspect.isroutine(value) or inspect.isclass(value))


def _unknown_method(message: Any, name: Any) -> str:
    known = [n for n in dir(message) if not n.startswith("_")]
    hint = difflib.get_close_matches(str(name), known, n=1)
    suggestion = f"; did you mean msg:{hint[0]}?" if hint else ""
    return f"msg:{name} is not a method of {type(message).__name__}{suggestion}"
