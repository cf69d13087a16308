-- kumocore's policy-extras.shaping: traffic shaping from TOML/JSON shaping files
-- (format: docs/helpers-shaping.md).
--
--   kumo.on('get_egress_path_config', shaping:setup { '/etc/kumo/shaping.toml' })
--
--   local shaper = shaping:setup_with_automation { extra_files = { ... } }
--   kumo.on('get_egress_path_config', shaper.get_egress_path_config)
--
-- kumocore's default shaping file is loaded first unless no_default_files is set. The
-- files are loaded, checked and their MX rollups resolved by kumo.shaping.load when setup
-- is called. Traffic shaping automation (docs/traffic-shaping-automation.md):
--
--   shaping:setup_with_automation { publish = { 'redis-throttles' },
--                                   subscribe = { 'redis-throttles' }, extra_files = ... }
--
-- publish/subscribe take TSA URLs ('http://host:port'), 'redis-throttles' (actions shared
-- through the Redis of kumo.configure_redis_throttles) or 'local' (this node only).
local kumo = require 'kumo'

-- Errors name the policy line that set the helper up (policy-extras.kumocore_caller).
local policy_level, load =
  require('policy-extras.kumocore_caller').for_file(debug.getinfo(1, 'S').source)

local mod = {}

local UNSUPPORTED = 'not supported by kumocore yet'

-- Options of setup_with_automation that kumocore honours.
local SUPPORTED = {
  extra_files = true,
  no_default_files = true,
  publish = true,
  subscribe = true,
  load_validation_options = true,
  validation_options = true,
}

-- KumoMTA options of the log hook that feeds its tsa-daemon; kumocore publishes matching
-- records directly (no spooled hook queue), so these have no meaning here.
local HOOK_OPTIONS = {
  tsa_queue_config = true,
  back_pressure = true,
  pre_filter = true,
  skip_log_record_types = true,
  additional_skip_log_record_types = true,
  publish_timeout = true,
  publish_pool_idle_timeout = true,
  publish_connection_verbose = true,
  cache_ttl = true,
}

local function is_empty(list)
  return list == nil or next(list) == nil
end

local function check_options(options)
  for _, key in ipairs { 'publish', 'subscribe', 'extra_files' } do
    if options[key] ~= nil and type(options[key]) ~= 'table' then
      error(string.format("policy-extras.shaping: setup_with_automation: %s must be a list, got %s",
        key, type(options[key])), policy_level())
    end
  end
  for key in pairs(options) do
    if HOOK_OPTIONS[key] then
      error(string.format(
        "policy-extras.shaping: option '%s' of setup_with_automation (KumoMTA's TSA log hook) is %s: kumocore publishes matching records itself",
        tostring(key), UNSUPPORTED), policy_level())
    elseif not SUPPORTED[key] then
      error(string.format(
        "policy-extras.shaping: option '%s' of setup_with_automation is %s",
        tostring(key), UNSUPPORTED), policy_level())
    end
  end
end

-- Shaping blocks may name egress sources; when the sources helper is set up too, each
-- name must be one of its sources.
local function check_sources(data)
  local loaded = package.loaded['policy-extras.sources']
  local configured = type(loaded) == 'table' and loaded.CONFIGURED
  if not configured then
    return
  end
  local sources = configured.get_data()
  for source, refs in pairs(data.get_referenced_sources()) do
    -- KumoMTA's own shaping.toml has a sample per-source block; KumoMTA skips it too.
    local sample = source == 'my source name' and #refs == 1 and refs[1]:find(': "example.com"$')
    if not sample and sources.get_egress_source(source) == nil then
      error(string.format("policy-extras.shaping: source '%s' is not defined by the sources helper; referenced by %s",
        source, table.concat(refs, ', ')), policy_level())
    end
  end
end

function mod:setup(extra_files)
  return self:setup_with_automation({
    extra_files = extra_files,
    publish = {},
    subscribe = {},
  }).get_egress_path_config
end

function mod:setup_with_automation(options)
  if mod.CONFIGURED then
    error('shaping module has already been configured', policy_level())
  end
  check_options(options)
  local file_names = {}
  if not options.no_default_files then
    file_names[1] = kumo.policy_extras.default_shaping_file()
  end
  for _, name in ipairs(options.extra_files or {}) do
    file_names[#file_names + 1] = name
  end
  local data = load(kumo.shaping.load, file_names, options.load_validation_options)
  -- An edited shaping file bumps the configuration epoch: the policy is evaluated again
  -- (this setup loads the new data) and the paths' 'Epoch' configurations are asked for
  -- again, as KumoMTA's helper picks edits up.
  kumo.policy_extras.monitor_files(file_names)
  for _, text in ipairs(data.get_warnings()) do
    kumo.log_warn(text)
  end
  check_sources(data)
  local lookup = data.get_egress_path_config
  local automation = nil
  if not is_empty(options.publish) or not is_empty(options.subscribe) then
    automation = load(kumo.policy_extras.shaping_automation, data.automation_handle,
      options.publish or {}, options.subscribe or {})
    lookup = automation.get_egress_path_config
  end

  local function get_egress_path_config(domain, egress_source, site_name)
    return lookup(domain, egress_source, site_name)
  end

  mod.CONFIGURED = {
    _file_names = file_names,
    _options = options,
    load_shaping_data = function()
      return data
    end,
    get_egress_path_config = get_egress_path_config,
    -- kumocore feeds delivery records to automation itself (no log hook to configure);
    -- kept so that KumoMTA policies calling it in init run unchanged.
    setup_publish = function() end,
  }
  return mod.CONFIGURED
end

return mod
