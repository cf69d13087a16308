-- kumocore's policy-extras.listener_domains: relay, OOB and ARF settings per domain from
-- TOML/JSON data files (format: docs/helpers-listener-domains.md).
--
--   kumo.on('get_listener_domain', listener_domains:setup { '/etc/kumo/listener_domains.toml' })
--
-- The files are read and checked by kumocore (kumo.policy_extras.listener_domains) when
-- setup is called; the returned function answers the get_listener_domain event.
local kumo = require 'kumo'

-- Errors name the policy line that set the helper up (policy-extras.kumocore_caller).
local _, load =
  require('policy-extras.kumocore_caller').for_file(debug.getinfo(1, 'S').source)

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
