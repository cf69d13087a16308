-- The Lua half of kumocore's `kumo` standard library (see stdlib/__init__.py), run once per
-- policy runtime with the `kumo` table, after every Python function was installed in it.
-- It is loaded under the bridge's chunk name so that error positions skip its frames and
-- name the policy's line (see bridge.lua, policy_frame).
--
-- These parts live in Lua because they need the Lua stack or must call Lua functions in a
-- way that may suspend for I/O:
--  * kumo.memoize calls the policy's function itself (it may look up DNS, read files);
--  * kumo.traceback, kumo.get_event_registrars and kumo.validation_failed's file:line read
--    the caller's stack;
--  * `require 'kumo.regex'` etc. and the "not supported by kumocore yet" guard.
local kumo, py = ...

local debug, error, ipairs, pairs, rawget, select, setmetatable, type =
  debug, error, ipairs, pairs, rawget, select, setmetatable, type
local unpack = table.unpack

--------------------------------------------------------------------------- memoize

local memo_cache, memo_lookup, memo_store = py.memo_cache, py.memo_lookup, py.memo_store

-- The error a computation failed with, as the policy raised it. A to-be-closed variable
-- sees it after the active message handler: unless the policy called us under its own
-- pcall, that is the bridge's (bridge.lua, on_error), which wraps the error as
-- { value = <the error>, where, detail, traceback }.
local function raised(err)
  if type(err) == 'table' and rawget(err, 'traceback') ~= nil and rawget(err, 'detail') ~= nil
  then
    return rawget(err, 'value')
  end
  return err
end

-- Closing the computing caller's ticket tells the callers waiting for the same key how its
-- computation ended, however it ended: nothing more to say after memo_store; the error it
-- raised; or, when its handler was stopped (the coroutine closed: no error), that one of
-- them must compute instead. A guard rather than pcall, so that the error itself goes on
-- unchanged, still naming the line that failed.
local ticket_meta = {
  __close = function(found, err)
    if not pcall(found.release, raised(err)) then
      found.release() -- an error value that cannot cross into Python (a cyclic table)
    end
  end,
}

-- The cache lives in Python (named, shared across reloads); the value is stored as data
-- and each call gets a fresh copy, as KumoMTA does. A call that finds another one already
-- computing the same key waits for its result (memo_lookup suspends it), so a burst of
-- messages computes a value once, as KumoMTA does.
function kumo.memoize(fn, params)
  if type(fn) ~= 'function' then
    error('kumo.memoize: the first argument must be a function, got ' .. type(fn), 2)
  end
  local name = memo_cache(params)
  -- Every result is cached, as KumoMTA does (a function may return several values).
  local function store(found, ...)
    local n = select('#', ...)
    local stored = memo_store(name, found.flight, n, ...)
    return unpack(stored, 1, n)
  end
  local function compute(found, ...)
    local ticket <close> = setmetatable(found, ticket_meta)
    return store(found, fn(...))
  end
  return function(...)
    local found = memo_lookup(name, ...)
    if found.hit then
      return unpack(found.values, 1, found.n)
    end
    return compute(found, ...)
  end
end

--------------------------------------------------------------------------- stacks

-- "file:line" of a frame: with the full file name, or with Lua's short_src (which
-- abbreviates long names) where KumoMTA uses that and helpers compare against it.
local function position(level, short)
  local ar = debug.getinfo(level + 1, 'Sl')
  if ar then
    local full = not short and ar.source:sub(1, 1) == '@'
    return (full and ar.source:sub(2) or ar.short_src) .. ':' .. ar.currentline
  end
end

function kumo.traceback(level)
  local frames = {}
  local n = (level or 1) + 1
  while true do
    local ar = debug.getinfo(n, 'nSlt')
    if not ar then
      return frames
    end
    frames[#frames + 1] = {
      event = 'Normal',
      name = ar.name,
      name_what = ar.namewhat ~= '' and ar.namewhat or nil,
      source = ar.source,
      short_src = ar.short_src,
      line_defined = ar.linedefined >= 0 and ar.linedefined or nil,
      last_line_defined = ar.lastlinedefined >= 0 and ar.lastlinedefined or nil,
      what = ar.what,
      curr_line = ar.currentline >= 0 and ar.currentline or nil,
      is_tail_call = ar.istailcall,
    }
    n = n + 1
  end
end

-- kumo.on records who registered each event (a list of call stacks of "src:line"), which
-- KumoMTA's queue helper reads to check it was registered last.
local on, registrars = kumo.on, {}
function kumo.on(name, fn, ...)
  on(name, fn, ...)
  local stack, n = {}, 2
  while true do
    local where = position(n, true)
    if not where then
      break
    end
    stack[#stack + 1] = where
    n = n + 1
  end
  local list = registrars[name]
  if not list then
    list = {}
    registrars[name] = list
  end
  list[#list + 1] = stack
end

function kumo.get_event_registrars(name)
  return registrars[name]
end

local validation_failed = rawget(kumo, 'validation_failed')
if validation_failed then
  function kumo.validation_failed(message)
    validation_failed(message, position(2))
  end
end

--------------------------------------------------------------------------- kumo.jsonl

-- A tailer calls a policy's record filter from Python with the record as Python data; the
-- policy expects a table (record.type, pairs(record)), so each filter gets one (py.as_table).
local as_table = py.as_table
local function table_filter(filter)
  if type(filter) ~= 'function' then
    return filter
  end
  return function(record)
    return filter(as_table(record))
  end
end

local function copy(tbl)
  local out = {}
  for key, value in pairs(tbl) do
    out[key] = value
  end
  return out
end

if type(rawget(kumo, 'jsonl')) == 'table' then
  local jsonl = kumo.jsonl
  local new_tailer, new_multi_tailer = jsonl.new_tailer, jsonl.new_multi_tailer
  function jsonl.new_tailer(config, filter)
    return new_tailer(config, table_filter(filter))
  end
  function jsonl.new_multi_tailer(config)
    if type(config) == 'table' and type(config.consumers) == 'table' then
      config = copy(config) -- the policy's own tables stay as they were
      local consumers = {}
      for i, consumer in ipairs(config.consumers) do
        consumers[i] = type(consumer) == 'table' and copy(consumer) or consumer
        if type(consumer) == 'table' then
          consumers[i].filter = table_filter(consumer.filter)
        end
      end
      config.consumers = consumers
    end
    return new_multi_tailer(config)
  end
end

--------------------------------------------------------------------------- modules

-- `require 'kumo.regex'` / `require 'kumo.string'` return the namespaces, as in KumoMTA.
local function register_modules(tbl, prefix)
  for key, value in pairs(tbl) do
    if type(value) == 'table' and type(key) == 'string' then
      package.loaded[prefix .. '.' .. key] = value
      register_modules(value, prefix .. '.' .. key)
    end
  end
end
register_modules(kumo, 'kumo')

--------------------------------------------------------------------------- the guard

-- KumoMTA names kumocore lacks: reading one raises one clear line instead of handing Lua a
-- nil to call. Names KumoMTA doesn't have either read as nil, like any table field.
local function guard(tbl, path, missing)
  setmetatable(tbl, {
    __index = function(_, key)
      if missing[key] then
        py.unsupported(path .. '.' .. key)
      end
    end,
  })
end

local by_namespace = {}
for _, name in ipairs(py.kumomta_names) do
  local tbl, path = kumo, 'kumo'
  for part in name:gmatch('[^.]+') do
    local value = rawget(tbl, part)
    if value == nil then
      by_namespace[tbl] = by_namespace[tbl] or { path = path, missing = {} }
      by_namespace[tbl].missing[part] = true
      break
    elseif type(value) ~= 'table' then
      break
    end
    tbl, path = value, path .. '.' .. part
  end
end
for tbl, info in pairs(by_namespace) do
  guard(tbl, info.path, info.missing)
end
