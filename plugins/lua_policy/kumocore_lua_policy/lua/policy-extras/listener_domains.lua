-- kumocore's policy-extras.listener_domains: relay, OOB and ARF settings per domain from
-- TOML/JSON data files (format: docs/helpers-listener-domains.md).
--
--   kumo.on('get_listener_domain', listener_domains:setup { '/etc/kumo/listener_domains.toml' })
--
-- The files are read and checked by kumocore (kumo.policy_extras.listener_domains) when
-- setup is called; the returned function answers the get_listener_domain event.
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
    error('listener_domains module has already been configured', 2)
  end
  local data = load(kumo.policy_extras.listener_domains, data_files)
  local lookup = data.get_listener_domain
  mod.CONFIGURED = { data_files = data_files, data = data }
  return function(domain, listener, conn_meta)
    return lookup(domain, listener, conn_meta)
  end
end

return mod
