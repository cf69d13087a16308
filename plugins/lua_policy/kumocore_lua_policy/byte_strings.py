"""The mark of a ``kumo.*`` function that takes Lua strings as the bytes they are.

Lua strings are byte strings; lupa decodes each one that reaches Python as UTF-8 and fails
on any other. A function marked :func:`takes_bytes` (digests, encoders, decoders) gets such
a string as ``bytes`` instead (``LuaEngine.wrap`` adds the conversion); valid UTF-8 still
arrives as ``str``. A module of its own, so that the engine and the standard library share
the one mark without either importing the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: Set by :func:`takes_bytes`, read by ``LuaEngine.wrap``.
BYTES_ATTR = "__kumo_bytes__"


def takes_bytes(fn: F) -> F:
    """Mark ``fn`` as taking Lua byte strings: a string argument (or a string value of a
    table argument) that is not valid UTF-8 reaches it as its raw ``bytes``."""
    setattr(fn, BYTES_ATTR, True)
    return fn


def wants_bytes(fn: Callable[..., Any]) -> bool:
    return bool(getattr(fn, BYTES_ATTR, False))


#: Lua strings are bytes; lupa decodes each one that reaches Python as UTF-8 and fails on
#: any other (``string.char(0xff)``, a digest's ``.bytes``). For a function marked
#: ``takes_bytes`` this wrapper hands such a string over as a Python ``bytes`` instead:
#: each byte of 128 and over becomes the UTF-8 of that code point, so that lupa decodes
#: the string; ``as_bytes`` turns the text back into the bytes (Latin-1) and keeps them a
#: Python object in Lua (``as_itemgetter``), which lupa gives back to Python as is. That
#: costs ~30 ms a MiB, so only strings that are not valid UTF-8 take this way; the others,
#: the common case, pass unchanged. Tables too (and plain tables within them, a few levels
#: down), but for string values that are not valid UTF-8 (``{ key_data = digest.bytes }``),
#: which a copy of the table holds as bytes.
#: Whether a string is valid UTF-8: ``utf8.len`` for a short one; for a long one, whether
#: lupa can decode it (calling :func:`accept`, which does nothing), as that is ~30 times
#: faster per byte. Loaded as part of the bridge, so that error positions skip its frames.
BYTES_ARGS_LUA = r"""
local as_bytes, accept = ...
local gsub, len = string.gsub, utf8.len
local getmetatable, next, pcall, select, type, unpack =
  getmetatable, next, pcall, select, type, table.unpack
local SHORT = 256  -- up to this length, utf8.len is quicker than asking lupa

local LATIN1 = {}  -- byte -> the UTF-8 of its code point, for bytes 128..255
for b = 128, 255 do
  LATIN1[string.char(b)] = utf8.char(b)
end

local function binary(value)
  if type(value) ~= 'string' then
    return false
  elseif #value <= SHORT then
    return not len(value)
  end
  return not pcall(accept, value)
end

local function to_bytes(s)
  return as_bytes((gsub(s, '[\128-\255]', LATIN1)))
end

-- Nested plain tables too (not objects), a few levels down: a KeySource sits two tables
-- deep in kumo.crypto's { key = { key_data = ... } }.
local MAX_DEPTH = 4

local function arg(value, depth)
  depth = depth or 0
  if binary(value) then
    return to_bytes(value)
  elseif type(value) ~= 'table' or depth >= MAX_DEPTH or (depth > 0 and getmetatable(value)) then
    return value
  end
  local copy
  for key, item in next, value do
    local converted = arg(item, depth + 1)
    if converted ~= item and not copy then
      copy = {}
      for k, v in next, value do
        copy[k] = v
      end
    end
    if copy then
      copy[key] = converted
    end
  end
  return copy or value
end

return function(fn)
  return function(...)
    local n = select('#', ...)
    if n == 1 then
      return fn(arg((...)))
    end
    local args = { ... }
    for i = 1, n do
      args[i] = arg(args[i])
    end
    return fn(unpack(args, 1, n))
  end
end
"""


def accept(text: str) -> None:
    """Nothing: lupa decoding ``text`` as UTF-8 on the way in is the test
    (``BYTES_ARGS_LUA``)."""
