-- The Lua half of kumocore's policy bridge, loaded once per policy runtime under the chunk
-- name "=kumo-bridge" and called with a table of Python helpers (see engine.py).
--
-- It lives in Lua because these parts must run on the Lua stack:
--  * the coroutine driver: a kumo.* call that needs I/O yields from Lua code (a Python
--    callback cannot yield a Lua coroutine), and the Python driver awaits it;
--  * the error handler: only at the point of failure can we find the policy's file:line;
--  * a yieldable `require` (the C one cannot be yielded across);
--  * proxies: tables through which Lua reads Python objects (messages, conn_meta, configs).
local py = ...

local coroutine, debug, error, select, setmetatable, tostring, type =
  coroutine, debug, error, select, setmetatable, tostring, type
local unpack = table.unpack

local BRIDGE = '=kumo-bridge'
-- Yields carrying this token belong to the driver; any other yield is the policy's own.
local AWAIT = setmetatable({}, { __name = 'kumo-await' })
-- Coroutines run by the driver (only these may suspend for I/O) -> the function they run.
local driven = setmetatable({}, { __mode = 'k' })
-- Proxy table -> the Python object it stands for.
local target_of = setmetatable({}, { __mode = 'k' })
-- The Python class of a method proxy's object (see message_meta).
local class_of = setmetatable({}, { __mode = 'k' })

local bridge = {}

--------------------------------------------------------------------------- calls into Python

-- Where the first string that is not valid UTF-8 sits in `value` (a string, or a plain
-- table searched a few levels down, keys too): the path of fields below the argument
-- ('' for the argument itself) and the 1-based position of its first bad byte; nil when
-- there is none. Only run once a call has failed, so its cost does not matter.
local next, getmetatable, utf8_len = next, getmetatable, utf8.len
local BINARY_SEARCH_DEPTH = 8 -- deeper than any options table; stops at a cycle

local function field(path, key)
  if type(key) == 'string' and key:match('^[%a_][%w_]*$') then
    return path == '' and key or (path .. '.' .. key)
  end
  return path .. '[' .. (type(key) == 'number' and tostring(key) or '?') .. ']'
end

local function find_binary(value, path, depth)
  local kind = type(value)
  if kind == 'string' then
    local valid, at = utf8_len(value)
    if not valid then
      return path, at
    end
  elseif kind == 'table' and depth < BINARY_SEARCH_DEPTH and getmetatable(value) == nil then
    for key, item in next, value do
      local where, at = find_binary(item, field(path, key), depth + 1)
      if type(key) == 'string' and not utf8_len(key) then
        where, at = 'a key' .. (path == '' and '' or (' in ' .. path)), select(2, utf8_len(key))
      end
      if where then
        return where, at
      end
    end
  end
end

-- The error for a call of `name` whose arguments hold a string that is not valid UTF-8
-- (lupa can only hand Python text), naming the argument as Lua counts it (no self for a
-- method, `obj:name`), as KumoMTA's conversion of a Lua string to a Rust String fails;
-- nil when no argument holds one. Functions that take bytes never get here (they are
-- wrapped by byte_strings.py first).
local function binary_argument(name, ...)
  local first = name:find(':', 1, true) and 2 or 1
  for i = first, select('#', ...) do
    local where, at = find_binary((select(i, ...)), '', 0)
    if where then
      return string.format('%s: bad argument #%d%s: error converting Lua string to String '
        .. '(invalid utf-8 sequence at byte %d)', name, i - first + 1,
        where == '' and '' or (' (' .. where .. ')'), at - 1)
    end
  end
end

-- A Lua function calling the Python callable `fn` through py.invoke, which answers
-- ('ok', value), ('await', pending), ('error', exception) or ('binary', exception): the
-- latter when Python met a string that is not UTF-8 in a table argument. lupa refuses
-- such a string passed directly before `invoke` runs, hence the pcall.
function bridge.wrap(fn, name)
  local invoke = py.invoke
  return function(...)
    local ok, status, value = pcall(invoke, fn, name, ...)
    if not ok or status == 'binary' then
      local message = binary_argument(name, ...)
      if message then
        error(message, 2)
      elseif not ok then
        error(status, 0) -- not about text: re-raised as it was
      end
      status = 'error'
    end
    if status == 'await' then
      if not (driven[coroutine.running()] ~= nil and coroutine.isyieldable()) then
        py.discard(value)
        error(name .. ' needs I/O, which is only possible in policy code that kumocore runs '
          .. '(top level or an event handler), not in a coroutine of your own or a callback '
          .. 'of a C function such as table.sort', 2)
      end
      status, value = coroutine.yield(AWAIT, value)
    end
    if status == 'error' then
      error(value, 2)
    elseif status == 'multi' then -- a function with several results (MultipleValues)
      return unpack(value, 1, value.n)
    end
    return value
  end
end

--------------------------------------------------------------------------- errors

local function location(ar)
  local prefix = ar.source:sub(1, 1)
  local file = (prefix == '@' or prefix == '=') and ar.source:sub(2) or ar.short_src
  return file .. ':' .. ar.currentline
end

-- The first policy frame at or above `level` (of the caller), skipping C functions and
-- this bridge; with want_src/want_line, the frame that an error message's prefix names.
-- `format` turns the frame into text (default: `location`).
local function policy_frame(level, want_src, want_line, format)
  level = level + 1
  while true do
    local ar = debug.getinfo(level, 'Sl')
    if not ar then
      return nil
    end
    if ar.currentline > 0 and ar.source ~= BRIDGE
      and (want_src == nil or (ar.short_src == want_src and ar.currentline == want_line)) then
      return (format or location)(ar)
    end
    level = level + 1
  end
end

-- Where the handler `fn` (by default the running one) was defined: the best we can say
-- when the failing call was a tail call (`return kumo.make_queue_config(params)`), which
-- leaves no frame of the caller, or when Lua ran out of memory (no frame is left at all).
local function entry_point(fn)
  fn = fn or driven[coroutine.running()]
  if type(fn) == 'function' then
    local ar = debug.getinfo(fn, 'S')
    if ar.what == 'Lua' then
      ar.currentline = ar.linedefined
      return location(ar)
    end
  end
end

-- For error messages that name a handler from outside a call (a wrong answer's handler).
bridge.entry_point = entry_point

-- xpcall message handler: runs on the failing stack, so it can name the policy's line.
local function on_error(err)
  local info = { value = err }
  if type(err) == 'string' then
    local src, line, rest = err:match('^(.-):(%d+): (.*)$')
    if src then
      -- Lua abbreviates long file names in messages; the frame has the full one.
      info.where = policy_frame(2, src, tonumber(line)) or (src .. ':' .. line)
      info.detail = rest
    else
      info.where = policy_frame(2) or entry_point()
      info.detail = err
    end
  else
    info.where = policy_frame(2) or entry_point()
    local ok, text = pcall(tostring, err)
    info.detail = ok and text or ('(error object of type ' .. type(err) .. ')')
  end
  info.traceback = debug.traceback(info.detail, 2)
  return info
end

--------------------------------------------------------------------------- kumo.log_*

-- kumo.log_error/warn/info/debug(...), as KumoMTA's: each argument as tostring shows it
-- (a string's bytes that are not valid UTF-8 as \xNN), joined by spaces, and the calling
-- policy file:line, which only the Lua stack knows. LuaEngine.wrap hands `log_call` the
-- wrapped `with_location(where, text)` of Python's log function (policy/basic_functions.py).
local pcall, utf8_len, concat = pcall, utf8.len, table.concat

local function log_text(v)
  if type(v) ~= 'string' then
    local ok, text = pcall(tostring, v)
    return ok and text or ('(' .. type(v) .. ')')
  end
  if utf8_len(v) then
    return v
  end
  local out, i = {}, 1
  while i <= #v do
    local valid, bad = utf8_len(v, i)
    if valid then
      out[#out + 1] = v:sub(i)
      break
    end
    out[#out + 1] = v:sub(i, bad - 1)
    out[#out + 1] = ('\\x%02X'):format(v:byte(bad))
    i = bad + 1
  end
  return concat(out)
end

-- KumoMTA names a log record's source by Lua's short_src, so long names come abbreviated:
-- a file loaded by `require` (chunk '@path') keeps its tail after '...'. KumoMTA loads the
-- policy file itself under its bare path, which Lua treats as a string source: it keeps
-- the first STRING_ID_CHARS characters before '...' (in `[string "..."]`, which KumoMTA
-- strips). kumocore loads the policy file as '@path', so that one is redone here.
local STRING_ID_CHARS = 45 -- LUA_IDSIZE (60) less `[string "`, `..."]` and the NUL
local policy_source -- '@' .. the policy file's path (LuaEngine.load_file)

function bridge.set_policy_source(source)
  policy_source = source
end

local function log_location(ar)
  local src = ar.short_src
  if ar.source == policy_source then
    src = ar.source:sub(2)
    local newline = src:find('\n', 1, true)
    if newline or #src >= STRING_ID_CHARS then
      src = src:sub(1, math.min((newline or #src + 1) - 1, STRING_ID_CHARS)) .. '...'
    end
  else
    src = src:match('^%[string "(.*)"%]$') or src
  end
  return src .. ':' .. ar.currentline
end

function bridge.log_call(emit)
  return function(...)
    local n, parts = select('#', ...), { ... }
    for i = 1, n do
      parts[i] = log_text(parts[i])
    end
    emit(policy_frame(1, nil, nil, log_location) or entry_point() or '?',
      concat(parts, ' ', 1, n))
  end
end

--------------------------------------------------------------------------- the driver

-- Lua runs on the event loop's thread: code that never yields (a `while true do end`)
-- would hold every client and signal. A count hook looks at the clock every
-- SLICE_INSTRUCTIONS instructions and stops code that ran SLICE_SECONDS without yielding
-- (py.slice_seconds) with an error naming its line, as any other policy error.
local SLICE_INSTRUCTIONS = 1000000
local now, slice_seconds = py.monotonic, py.slice_seconds
local slice_started = 0

local function check_slice()
  if now() - slice_started > slice_seconds then
    error(('ran for more than %gs without yielding (a loop that never ends?); '
      .. 'stopped'):format(slice_seconds), 2)
  end
end

-- Start `fn(...)` as a driven coroutine. Returns step(...) and close(): step resumes it and
-- answers ('await', pending), ('done', first result, second result, number of results) or
-- ('error', info). The count tells `return nil` from no return at all: KumoMTA goes on to
-- an event's next handler only after one that returned no value (policy.py).
function bridge.start(fn, ...)
  local n, args = select('#', ...), { ... }
  local co = coroutine.create(function()
    return xpcall(fn, on_error, unpack(args, 1, n))
  end)
  debug.sethook(co, check_slice, '', SLICE_INSTRUCTIONS)
  driven[co] = fn
  local function settle(ok, a, ...)
    -- c: a handler's second result (smtp_server_rewrite_response returns two)
    local b, c = ...
    if not ok then -- only an error in on_error itself gets here
      return 'error', { value = a, detail = tostring(a) }
    end
    if coroutine.status(co) == 'suspended' then
      if a == AWAIT then
        return 'await', b
      end
      coroutine.close(co)
      return 'error', { detail = 'coroutine.yield() outside a coroutine created by the policy' }
    end
    if a then
      return 'done', b, c, select('#', ...)
    end
    if type(b) ~= 'table' then -- out of memory: Lua calls no message handler for that
      return 'error', { value = b, detail = tostring(b), where = entry_point(fn) }
    end
    return 'error', b
  end
  local function step(...)
    slice_started = now()
    return settle(coroutine.resume(co, ...))
  end
  local function close()
    coroutine.close(co)
  end
  return step, close
end

--------------------------------------------------------------------------- proxies

local function read_only(t, k)
  error(("cannot set '%s' on %s: it is read-only"):format(tostring(k), tostring(t)), 2)
end

-- Like pairs() over a table, fields whose value is nil (None) are skipped.
local function pairs_over(names, get)
  return function(t)
    local obj, keys, i = target_of[t], names(target_of[t]), 0
    return function()
      while true do
        i = i + 1
        local k = keys[i]
        if k == nil then
          return nil
        end
        local v = get(obj, k)
        if v ~= nil then
          return k, v
        end
      end
    end, t, nil
  end
end

local function str(t)
  return py.str(target_of[t])
end

-- An operand of an arithmetic or comparison metamethod: a proxy's Python object, or the
-- plain value.
local function operand(v)
  local obj = target_of[v]
  if obj ~= nil then
    return obj
  end
  return v
end

local function binop(op)
  return function(a, b)
    return py.binop(op, operand(a), operand(b))
  end
end

-- A Python object with readable fields (a config, an address, a DNS answer...). `==`, `+`
-- and `-` use Python's operators (equal configs are equal; Time + TimeDelta).
local object_meta = {
  __name = 'kumo-object',
  __index = function(t, k) return py.get_attr(target_of[t], k) end,
  __newindex = read_only,
  __pairs = pairs_over(py.fields, py.get_attr),
  __tostring = str,
  __eq = binop('eq'),
  __add = binop('add'),
  __sub = binop('sub'),
  -- `local w <close> = kumo.jsonl.new_writer {...}`: leaving the scope calls w:close(), as
  -- KumoMTA's closable objects do; a no-op for an object without a close method.
  __close = function(t)
    local close = py.get_attr(target_of[t], 'close')
    if close ~= nil then
      close(t)
    end
  end,
}

-- A live view of a Python dict (conn_meta, auth_info): reads and writes go to the dict.
local map_methods = {
  get_meta = function(self, k) return py.map_get(target_of[self], k) end,
  set_meta = function(self, k, v) py.map_set(target_of[self], k, v) end,
  -- conn_meta:auth_info(): a copy of the session's AuthInfo, as a plain table
  auth_info = function(self) return py.map_auth_info(target_of[self]) end,
}
local map_meta = {
  __name = 'kumo-map',
  __index = function(t, k)
    local method = map_methods[k]
    if method ~= nil then
      return method
    end
    return py.map_get(target_of[t], k)
  end,
  __newindex = function(t, k, v) py.map_set(target_of[t], k, v) end,
  __pairs = pairs_over(py.map_keys, py.map_get),
  __tostring = str,
}

-- A Message: msg:method(...) calls the Python method (see proxies.message_method).
-- The functions are kept per class and name: a header map's set_sender is not the
-- message's (its error names its owner, and it may take binary strings or not).
local message_methods = {}
local message_meta = {
  __name = 'kumo-message',
  __index = function(t, k)
    local class = class_of[t]
    local methods = message_methods[class]
    if methods == nil then
      methods = {}
      message_methods[class] = methods
    end
    local method = methods[k]
    if method == nil then
      method = py.message_method(target_of[t], k)
      methods[k] = method
    end
    return method
  end,
  __newindex = read_only,
  __tostring = str,
}

-- An object with both fields and methods (a MIME part): part.body, part:method(...).
local fields_meta = {
  __name = 'kumo-object',
  __index = function(t, k) return py.member(target_of[t], k) end,
  __newindex = function(t, k, v) -- only fields the object declares settable (part.body)
    local set = py.member_setter(target_of[t], k)
    if set == nil then
      read_only(t, k)
    end
    set(v)
  end,
  __tostring = str,
}

local metas = { object = object_meta, map = map_meta, message = message_meta,
                fields = fields_meta }

function bridge.proxy(kind, obj, class)
  local t = setmetatable({}, metas[kind])
  target_of[t] = obj
  if class ~= nil then
    class_of[t] = class
  end
  return t
end

-- The Python object behind a proxy, or nil for an ordinary table.
function bridge.target(t)
  return target_of[t]
end

--------------------------------------------------------------------------- environment

-- KumoMTA's modules besides kumo. KumoMTA registers them before any policy code runs, so
-- `require` never searches a file for them; kumocore's plugins contribute their functions
-- as kumo.sqlite.* and kumo.redis.* (Python policies reach them there), and `require`
-- answers those tables. Without them (a runtime lacking the plugin), one clear line
-- instead of Lua's list of every path it searched.
-- KumoMTA's modules that live on `kumo` (kumo.sqlite...). A string says why one is absent:
-- `tsa` is only given to a policy run by `kumocore tsa serve` (KumoMTA: only in its
-- tsa-daemon process).
local KUMO_MODULES = {
  sqlite = true,
  redis = true,
  tsa = 'is only available to the tsa-daemon policy run by `kumocore tsa serve`',
  proxy = 'is only available to the proxy policy run by `kumocore proxy serve`',
}

-- `require` as in Lua 5.4, but written in Lua so that a module's top-level code may call
-- kumo.* functions that yield (the C implementation is not yieldable).
local function require(name)
  local loaded = package.loaded
  local value = loaded[name]
  if value then
    return value
  end
  if KUMO_MODULES[name] then
    local kumo = loaded.kumo
    local module = type(kumo) == 'table' and rawget(kumo, name)
    if type(module) == 'table' then
      loaded[name] = module
      return module
    end
  end
  local messages = {}
  for _, searcher in ipairs(package.searchers) do
    local loader, extra = searcher(name)
    if type(loader) == 'function' then
      local result = loader(name, extra)
      if result ~= nil then
        loaded[name] = result
      elseif loaded[name] == nil then
        loaded[name] = true
      end
      return loaded[name], extra
    elseif type(loader) == 'string' then
      messages[#messages + 1] = loader
    end
  end
  if type(KUMO_MODULES[name]) == 'string' then
    error(("module '%s' %s"):format(name, KUMO_MODULES[name]), 2)
  elseif KUMO_MODULES[name] then
    error(("KumoMTA's module '%s' is not supported by kumocore yet"):format(name), 2)
  end
  error(("module '%s' not found:%s"):format(name, table.concat(messages)), 2)
end

-- `print` through Python's sys.stdout, so it interleaves with Python output (and tests
-- can capture it).
local function print(...)
  local parts = {}
  for i = 1, select('#', ...) do
    parts[i] = tostring((select(i, ...)))
  end
  py.write(table.concat(parts, '\t'))
end

-- `search_path(default)` returns the whole package.path (see package_path.lua_package_path).
function bridge.install(kumo, search_path)
  package.loaded.kumo = kumo
  if search_path then
    package.path = search_path(package.path)
  end
  _G.require = require
  _G.print = print
  _G.python = nil -- lupa's module: not part of KumoMTA's environment
end

return bridge
