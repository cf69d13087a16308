-- kumocore's policy-extras.dkim_sign: DKIM signing driven by dkim_data.toml
-- (format: docs/helpers-dkim-sign.md).
--
--   local dkim_signer = dkim_sign:setup { '/etc/kumo/dkim_data.toml' }
--   kumo.on('smtp_server_message_received', function(msg) dkim_signer(msg) end)
--
-- The files are read and every key file named in them loaded when setup is called
-- (kumo.policy_extras.dkim_data), so a missing key fails at policy load.
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
