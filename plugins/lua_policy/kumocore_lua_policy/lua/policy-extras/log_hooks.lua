-- kumocore's policy-extras.log_hooks: KumoMTA's helper for log hooks, on top of
-- kumo.configure_log_hook, the should_enqueue_log_record event and a custom_lua queue.
--
--   log_hooks:new{ name, constructor, log_parameters?, queue_config?, batch_size?,
--                  min_batch_size?, max_batch_latency?, filter? }
--   log_hooks:new_json{ name, url, log_parameters?, queue_config?, batch_size?, ... }
--   log_hooks:new_disposition_hook{ name, hook }
--
-- Records go to the queue '<name>.log_hook' (a domain no real mail can have), whose
-- queue config delivers through the custom event 'make.<name>.log_hook'.
local kumo = require 'kumo'
local mod = { CONFIGURED = {} }

local KNOWN = {
  name = true, constructor = true, log_parameters = true, queue_config = true,
  batch_size = true, min_batch_size = true, max_batch_latency = true, filter = true,
}

local function check_options(fn, options, extra)
  if type(options) ~= 'table' then
    error(string.format('log_hooks:%s: expected a table of options', fn), 3)
  end
  for key, _ in pairs(options) do
    if not KNOWN[key] and key ~= extra then
      error(string.format("log_hooks:%s: unknown option '%s'", fn, tostring(key)), 3)
    end
  end
  if type(options.name) ~= 'string' or options.name == '' then
    error(string.format('log_hooks:%s: name is required (a string)', fn), 3)
  end
  if mod.CONFIGURED[options.name] then
    error(string.format("log_hooks:%s: a log hook named '%s' is already configured",
      fn, options.name), 3)
  end
end

local function copy_into(target, source)
  for key, value in pairs(source or {}) do
    target[key] = value
  end
  return target
end

function mod:new(options)
  check_options('new', options)
  if type(options.constructor) ~= 'function' then
    error('log_hooks:new: constructor is required (a function(domain, tenant, campaign))', 2)
  end
  local name = options.name
  mod.CONFIGURED[name] = options
  local queue_domain = name .. '.log_hook'
  local event = 'make.' .. queue_domain

  kumo.on('pre_init', function()
    kumo.configure_log_hook(copy_into({ name = name }, options.log_parameters))
  end)

  kumo.on('should_enqueue_log_record', function(msg, hook_name)
    if hook_name ~= name then
      -- another hook's decision: a bare return lets the next handler answer (`return nil`
      -- would end the call, as KumoMTA calls its Multiple events)
      return
    end
    local record = msg:get_meta 'log_record'
    if record.reception_protocol == 'LogRecord' then
      return false -- the record of a hook delivery: never hook it again
    end
    if options.filter and options.filter(msg, hook_name) then
      return false
    end
    msg:set_meta('queue', queue_domain)
    return true
  end)

  -- The retry defaults KumoMTA's helper uses, overridable through queue_config.
  local queue_config = copy_into({ retry_interval = '1m', max_retry_interval = '20m' },
    options.queue_config)
  queue_config.protocol = {
    custom_lua = {
      constructor = event,
      batch_size = options.batch_size or 1,
      min_batch_size = options.min_batch_size,
      max_batch_latency = options.max_batch_latency,
    },
  }
  kumo.on('get_queue_config', function(domain, _tenant, _campaign, _routing_domain)
    if domain == queue_domain then
      return kumo.make_queue_config(queue_config)
    end
    -- not our queue: no return, so the next get_queue_config handler answers
  end)

  kumo.on(event, options.constructor)
end

-- log_hooks:new_disposition_hook { name, hook }: hook(msg, log_record) is called for each
-- record about a message while the message still exists (kumo.configure_log_disposition_hook
-- and the event 'log_disposition_<name>'), e.g. to send delivery status notifications.
function mod:new_disposition_hook(options)
  if type(options) ~= 'table' then
    error('log_hooks:new_disposition_hook: expected a table of options', 2)
  end
  for key, _ in pairs(options) do
    if key ~= 'name' and key ~= 'hook' then
      error(string.format("log_hooks:new_disposition_hook: unknown option '%s'",
        tostring(key)), 2)
    end
  end
  if type(options.name) ~= 'string' or options.name == '' then
    error('log_hooks:new_disposition_hook: name is required (a string)', 2)
  end
  if type(options.hook) ~= 'function' then
    error('log_hooks:new_disposition_hook: hook is required (a function(msg, log_record))', 2)
  end
  if mod.CONFIGURED[options.name] then
    error(string.format(
      "log_hooks:new_disposition_hook: a log hook named '%s' is already configured",
      options.name), 2)
  end
  mod.CONFIGURED[options.name] = options
  kumo.on('pre_init', function()
    kumo.configure_log_disposition_hook { name = options.name }
  end)
  kumo.on('log_disposition_' .. options.name, options.hook)
end

-- The disposition text of an HTTP response, as the webhook logs it.
local function disposition(response)
  return string.format('%d %s: %s', response:status_code(), response:status_reason(),
    response:text())
end

function mod:new_json(options)
  check_options('new_json', options, 'url')
  if type(options.url) ~= 'string' or options.url == '' then
    error('log_hooks:new_json: url is required (the URL to POST records to)', 2)
  end
  local url = options.url
  local batched = (options.batch_size or 1) > 1
  local hook = copy_into({}, options)
  hook.url = nil
  hook.constructor = function(_domain, _tenant, _campaign)
    local client = kumo.http.build_client {}
    local sender = {}
    local function post(body)
      local response = client:post(url):header('Content-Type', 'application/json')
        :body(body):send()
      if response:status_is_success() then
        return disposition(response)
      end
      -- A webhook that is down or failing is retried later (4xx), never dropped.
      kumo.reject(400, disposition(response))
    end
    if batched then
      -- One POST per batch: a JSON array of the records. Each body already is the
      -- record's JSON (plus a newline), so the array is built from the bodies: decoding
      -- and encoding again could turn an empty object into [] or drop null fields.
      function sender:send_batch(messages)
        local records = {}
        for i, msg in ipairs(messages) do
          records[i] = (msg:get_data():gsub('%s+$', ''))
        end
        return post('[' .. table.concat(records, ',') .. ']')
      end
    else
      function sender:send(message)
        return post(message:get_data())
      end
    end
    function sender:close()
      client:close()
    end
    return sender
  end
  return self:new(hook)
end

-- A hook that is defined but never delivers: nothing to do here.
function mod:new_disabled(_options) end

return mod
