-- kumocore's own helper for its policy-extras modules (not a KumoMTA module): errors
-- raised while a helper is being set up name the line of the *policy* that called it.
--
--   local policy_level, load =
--     require('policy-extras.kumocore_caller').for_file(debug.getinfo(1, 'S').source)
--
-- policy_level() is the error level of the first frame outside the helper's file (and
-- this one); load(loader, ...) runs a kumocore loader and raises its error at that level.
local M = {}
local HERE = debug.getinfo(1, 'S').source

function M.for_file(this_file)
  local function policy_level()
    local level = 2
    while true do
      local info = debug.getinfo(level + 1, 'S')
      if info == nil or (info.source ~= this_file and info.source ~= HERE) then
        return level
      end
      level = level + 1
    end
  end

  local function load(loader, ...)
    local ok, result = pcall(loader, ...)
    if not ok then
      error(tostring(result), policy_level())
    end
    return result
  end

  return policy_level, load
end

return M
