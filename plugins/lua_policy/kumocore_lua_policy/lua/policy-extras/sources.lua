-- kumocore's policy-extras.sources: egress sources and pools from TOML/JSON data files
-- (format: docs/helpers-sources.md).
--
--   sources:setup { '/etc/kumo/sources.toml' }
--
-- Registers the get_egress_source and get_egress_pool handlers. The files are read and
-- checked by kumocore (kumo.policy_extras.sources) when setup is called.
local kumo = require 'kumo'

-- The error level of the policy code that called into this module (the first frame
-- outside this file), so that errors name the policy line that set the helper up.
local THIS_FILE = debug.getinfo(1, 'S').source
local function policy_level()
  local level = 2
  while true do
    local info = debug.getinfo(level + 1, 'S')
    if info == nil or info.source ~= THIS_FILE then
      return level
    end
    level = level + 1
  end
end

-- Run a kumocore loader; its error is raised again as text at the policy's line.
local function load(loader, ...)
  local ok, result = pcall(loader, ...)
  if not ok then
    error(tostring(result), policy_level())
  end
  return result
end

local mod = {}

function mod:setup(data_files)
  if mod.CONFIGURED then
    error('sources module has already been configured', 2)
  end
  local data = load(kumo.policy_extras.sources, data_files)
  local get_source, get_pool = data.get_egress_source, data.get_egress_pool
  mod.CONFIGURED = {
    data_files = data_files,
    get_data = function()
      return data
    end,
  }
  kumo.on('get_egress_source', function(source_name)
    return get_source(source_name)
  end)
  kumo.on('get_egress_pool', function(pool_name)
    return get_pool(pool_name)
  end)
end

return mod
