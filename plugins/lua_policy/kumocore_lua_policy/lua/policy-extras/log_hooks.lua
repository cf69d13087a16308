-- kumocore's policy-extras.log_hooks. KumoMTA's module wires webhooks through
-- kumo.configure_log_hook; kumocore has no log hooks yet (write a log-sink plugin
-- instead: docs/plugins.md). The module loads, so a policy that requires it still loads
-- as long as it does not set a hook up; new/new_json refuse clearly instead of
-- pretending to deliver, and new_disabled is accepted (it delivers nothing anyway).
local mod = {}

local NOT_YET = 'policy-extras.log_hooks: log hooks (kumo.configure_log_hook) are not '
  .. 'supported by kumocore yet; write a log-sink plugin instead (docs/plugins.md)'

function mod:new(_options)
  error(NOT_YET, 2)
end

function mod:new_json(_options)
  error(NOT_YET, 2)
end

-- A hook that is defined but never delivers: nothing to do here.
function mod:new_disabled(_options) end

return mod
