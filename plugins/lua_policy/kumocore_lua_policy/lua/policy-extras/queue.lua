-- kumocore's policy-extras.queue: tenant, campaign and queue settings from queues.toml
-- (format: docs/helpers-queue.md).
--
--   local queue_helper = queue_module:setup { '/etc/kumo/queues.toml' }
--   kumo.on('smtp_server_message_received', function(msg) queue_helper:apply(msg) end)
--
-- setup registers a get_queue_config handler (unless skip_queue_config_hook is set).
local kumo = require 'kumo'

-- Errors name the policy line that set the helper up (policy-extras.kumocore_caller).
local policy_level, load =
  require('policy-extras.kumocore_caller').for_file(debug.getinfo(1, 'S').source)

local mod = {}

local SETUP_OPTIONS = {
  file_names = true,
  skip_queue_config_hook = true,
  invalidate_with_epoch = true,
}

function mod:setup(file_names)
  return self:setup_with_options {
    skip_queue_config_hook = false,
    file_names = file_names,
  }
end

function mod:setup_with_options(options)
  if mod.CONFIGURED then
    error('queues module has already been configured', policy_level())
  end
  for key in pairs(options) do
    if not SETUP_OPTIONS[key] then
      error(string.format("policy-extras.queue: unknown setup option '%s'", tostring(key)), policy_level())
    end
  end
  if options.file_names == nil then
    error('policy-extras.queue: setup_with_options needs file_names', policy_level())
  end
  local data = load(kumo.policy_extras.queue, options.file_names)
  local apply, resolve, params = data.apply, data.resolve, data.params

  local helper = { file_names = options.file_names }
  function helper:apply(msg)
    apply(msg)
  end
  -- The kumo.make_queue_config options the files give for a domain, tenant and campaign,
  -- as a plain table (empty when they say nothing), as KumoMTA's helper returns them.
  function helper:resolve_config(domain, tenant, campaign)
    return params(domain, tenant, campaign)
  end

  -- overall_max_message_rate ([tenant.'T'] and [tenant.'T'.campaigns.'C']): one rate
  -- for all of the tenant's (campaign's) queues, applied as a due message goes to its
  -- ready queue, through KumoMTA's throttle names. Registered only when the files set one.
  if data.has_overall_rates() then
    local overall_throttles = data.overall_throttles
    kumo.on('throttle_insert_ready_queue', function(msg)
      local tenant = msg:get_meta 'tenant'
      if tenant == nil then
        return
      end
      for _, throttle in ipairs(overall_throttles(tenant, msg:get_meta 'campaign')) do
        if kumo.make_throttle(throttle[1], throttle[2]):delay_message_if_throttled(msg) then
          return
        end
      end
    end)
  end

  if not options.skip_queue_config_hook then
    local wants_provider = data.wants_provider
    kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
      -- A queue whose files name no provider takes the one its egress path would have
      -- (the shaping helper's [provider] blocks), as KumoMTA's helper does: records the
      -- queue logs itself then name it.
      if wants_provider(domain, tenant, campaign) then
        return resolve(domain, tenant, campaign, mod:resolve_provider(domain, routing_domain))
      end
      return resolve(domain, tenant, campaign)
    end)
    mod.HOOK_POSITION = #kumo.get_event_registrars 'get_queue_config'
  end

  mod.CONFIGURED = {
    options = options,
    get_data = function()
      return data
    end,
    resolve_config = helper.resolve_config,
  }
  return helper
end

-- As KumoMTA's helper: get_queue_config handlers run in order until one answers, and this
-- one answers every domain the files cover ([queue.default]: all of them), so a handler
-- registered after it would silently never run. `kumocore validate` says so.
kumo.on('validate_config', function()
  local mine = mod.HOOK_POSITION
  local all = kumo.get_event_registrars 'get_queue_config' or {}
  if mine == nil or mine == #all then
    return
  end
  kumo.validation_failed()
  print 'policy-extras.queue is in use, but it is not the last module to register for the'
  print 'get_queue_config event: the handlers registered after it never run. They were'
  print 'registered at:'
  for index, stack in ipairs(all) do
    print(string.format('%d%s: %s', index, index == mine and ' (queue helper)' or '',
      stack[1] or '?'))
  end
  print 'Set the queue helper up after them, or use setup_with_options with'
  print 'skip_queue_config_hook = true and call helper:resolve_config yourself.'
end)

-- Whether `name = value` is a valid kumo.make_queue_config option (KumoMTA's helper
-- exports it; its log_hooks helper validates queue options with it).
function mod.is_queue_config_option(name, value)
  local ok = pcall(kumo.make_queue_config, { [name] = value })
  return ok
end

-- The provider_name the egress path configuration gives a destination, asked for the
-- 'unspecified' source (a provider is a matter of destination, not source); nil when it
-- names none or the asking fails (no MX, a handler error). Remembered for a minute, for
-- up to 128 destinations, and forgotten when the configuration epoch changes.
local function provider_of(domain, routing_domain)
  local destination = routing_domain or domain
  local asked, provider = pcall(function()
    local site = kumo.dns.lookup_mx(destination).site_name
    return kumo.invoke_get_egress_path_config(destination, 'unspecified', site).provider_name
  end)
  if asked then
    return provider
  end
  return nil
end

local remembered_provider_of = kumo.memoize(provider_of, {
  name = 'queue.lua_resolve_provider',
  ttl = '1 minute',
  capacity = 128,
  invalidate_with_epoch = true,
})

function mod:resolve_provider(domain, routing_domain)
  return remembered_provider_of(domain, routing_domain)
end

return mod
