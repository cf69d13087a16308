-- kumocore's policy-extras.policy_utils: small table and string utilities that the other
-- helpers and operators' policies use. Same names and behaviour as KumoMTA's module;
-- written for kumocore (data files are read by kumocore's Python loader).
local kumo = require 'kumo'

local mod = {}

-- Deep equality of two values (tables compared key by key; metatables are ignored).
function mod.equals(a, b)
  if a == b then
    return true
  end
  if type(a) ~= 'table' or type(b) ~= 'table' then
    return false
  end
  for k, v in pairs(a) do
    if not mod.equals(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

local function show(value)
  if type(value) == 'table' then
    return mod.dumps(value)
  end
  return tostring(value)
end

function mod.assert_eq(a, b, message)
  if not mod.equals(a, b) then
    error(string.format('%s: expected %s == %s', message or 'assert_eq failed', show(a),
      show(b)), 2)
  end
end

function mod.assert_ne(a, b, message)
  if mod.equals(a, b) then
    error(string.format('%s: expected %s ~= %s', message or 'assert_ne failed', show(a),
      show(b)), 2)
  end
end

-- `a` must be a string matching the Lua pattern `pattern`.
function mod.assert_matches(a, pattern, message)
  if type(a) ~= 'string' or not a:find(pattern) then
    error(string.format('%s: %s does not match %s', message or 'assert_matches failed',
      show(a), pattern), 2)
  end
end

-- Copy every key of src into dest (shallow); returns dest.
function mod.merge_into(src, dest)
  for k, v in pairs(src or {}) do
    dest[k] = v
  end
  return dest
end

-- Like merge_into, but tables present in both are merged recursively.
function mod.recursive_merge_into(src, dest)
  for k, v in pairs(src or {}) do
    if type(v) == 'table' and type(dest[k]) == 'table' then
      mod.recursive_merge_into(v, dest[k])
    else
      dest[k] = v
    end
  end
  return dest
end

-- True when the array `tbl` holds `v`.
function mod.table_contains(tbl, v)
  for _, item in ipairs(tbl or {}) do
    if item == v then
      return true
    end
  end
  return false
end

-- The keys of `tbl` as an array (in pairs() order).
function mod.table_keys(tbl)
  local keys = {}
  for k in pairs(tbl) do
    keys[#keys + 1] = k
  end
  return keys
end

function mod.table_is_empty(tbl)
  return next(tbl) == nil
end

-- A data file as a table: TOML when the name ends in .toml, JSON otherwise. A table
-- passed instead of a file name is returned as it is (inline data).
function mod.load_json_or_toml_file(filename)
  if type(filename) == 'table' then
    return filename
  end
  return kumo.policy_extras.load_data_file(filename)
end

function mod.starts_with(s, text)
  return s:sub(1, #text) == text
end

function mod.ends_with(s, text)
  return text == '' or s:sub(-#text) == text
end

-- '10.0.0.1:25' -> '10.0.0.1', '25'; '[::1]:25' -> '::1', '25'; no port -> ip, nil.
function mod.split_ip_port(ip_port)
  local ip, port = ip_port:match '^%[(.*)%]:(%d+)$'
  if ip then
    return ip, port
  end
  ip, port = ip_port:match '^([^:]*):(%d+)$'
  if ip then
    return ip, port
  end
  return ip_port, nil
end

local function show_key(k)
  return type(k) == 'string' and string.format('%q', k) or tostring(k)
end

-- A readable rendering of a value, tables sorted by key, cycles marked.
local function dump(value, indent, seen, out)
  if type(value) ~= 'table' then
    out[#out + 1] = type(value) == 'string' and string.format('%q', value) or tostring(value)
    return
  end
  if seen[value] then
    out[#out + 1] = '<cycle>'
    return
  end
  seen[value] = true
  local keys = mod.table_keys(value)
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  out[#out + 1] = '{\n'
  for _, k in ipairs(keys) do
    out[#out + 1] = string.rep('  ', indent + 1) .. '[' .. show_key(k) .. '] = '
    dump(value[k], indent + 1, seen, out)
    out[#out + 1] = ',\n'
  end
  out[#out + 1] = string.rep('  ', indent) .. '}'
  seen[value] = nil
end

function mod.dumps(value)
  local out = {}
  dump(value, 0, {}, out)
  return table.concat(out)
end

return mod
