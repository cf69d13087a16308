-- kumocore's policy-extras.dkim_sign: DKIM signing driven by dkim_data.toml
-- (format: docs/helpers-dkim-sign.md).
--
--   local dkim_signer = dkim_sign:setup { '/etc/kumo/dkim_data.toml' }
--   kumo.on('smtp_server_message_received', function(msg) dkim_signer(msg) end)
--
-- The files are read and every key file named in them loaded when setup is called
-- (kumo.policy_extras.dkim_data), so a missing key fails at policy load.
local kumo = require 'kumo'

-- Errors name the policy line that set the helper up (policy-extras.kumocore_caller).
local _, load =
  require('policy-extras.kumocore_caller').for_file(debug.getinfo(1, 'S').source)

local mod = {}

function mod:setup(dkim_data_files)
  if mod.CONFIGURED then
    error('dkim_sign module has already been configured', 2)
  end
  local data = load(kumo.policy_extras.dkim_data, dkim_data_files)
  local sign = data.sign
  mod.CONFIGURED = { data_files = dkim_data_files, data = data }
  return function(msg)
    sign(msg)
  end
end

return mod
