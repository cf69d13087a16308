-- kumocore's policy-extras.sources: egress sources and pools from TOML/JSON data files
-- (format: docs/helpers-sources.md).
--
--   sources:setup { '/etc/kumo/sources.toml' }
--
-- Registers the get_egress_source and get_egress_pool handlers. The files are read and
-- checked by kumocore (kumo.policy_extras.sources) when setup is called.
local kumo = require 'kumo'

-- Errors name the policy line that set the helper up (policy-extras.kumocore_caller).
local _, load =
  require('policy-extras.kumocore_caller').for_file(debug.getinfo(1, 'S').source)

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
