-- kumocore's policy-extras.mail_auth: the usual inbound authentication checks in one call
-- (docs/helpers-mail-auth.md). Interface as KumoMTA's helper of the same name:
--
--   local mail_auth = require 'policy-extras.mail_auth'
--   local checked = mail_auth.check(msg, { server_id = 'mx.example.com' })
--   -- checked.dkim (a list), .spf, .iprev, .smtp_auth, .dmarc, .arc, .auth_results
--
-- check() decides nothing: it gathers authentication results (in the order dkim, spf,
-- iprev, smtp_auth, dmarc, arc), optionally stamps them as an Authentication-Results
-- header, and returns them for the policy to judge or to pass to msg:arc_seal.
local kumo = require 'kumo'
local utils = require 'policy-extras.policy_utils'

local mod = {}

-- Option name -> default. Anything else in the table is refused, not ignored.
local BOOLEANS = {
  dkim = true,
  spf = true,
  iprev = true,
  smtp_auth = true,
  dmarc = true,
  arc = true,
  add_auth_results_header = true,
}

local function read_config(config)
  if config == nil then
    config = {}
  end
  if type(config) ~= 'table' then
    error('mail_auth.check: OPT_CONFIG must be a table, got ' .. type(config), 3)
  end
  local out = {}
  for key, value in pairs(config) do
    if BOOLEANS[key] ~= nil then
      if type(value) ~= 'boolean' then
        error(
          string.format('mail_auth.check: %s must be a boolean, got %s', key, type(value)),
          3
        )
      end
    elseif key == 'server_id' or key == 'resolver' then
      if type(value) ~= 'string' then
        error(
          string.format('mail_auth.check: %s must be a string, got %s', key, type(value)),
          3
        )
      end
    else
      error(
        string.format(
          'mail_auth.check: unknown option %s (expected dkim, spf, iprev, smtp_auth, '
            .. 'dmarc, arc, add_auth_results_header, server_id or resolver)',
          tostring(key)
        ),
        3
      )
    end
    out[key] = value
  end
  for key, default in pairs(BOOLEANS) do
    if out[key] == nil then
      out[key] = default
    end
  end
  return out
end

-- The DKIM results; an unsigned message still gets one entry, so that the header and
-- DMARC see "dkim=none" rather than nothing.
local function dkim_results(msg, resolver)
  local results = msg:dkim_verify(resolver)
  if #results > 0 then
    return results
  end
  return { { method = 'dkim', result = 'none', reason = 'message was not signed' } }
end

-- RFC 8601 section 2.7.5: the SMTP AUTH identity, if the client authenticated.
local function smtp_auth_result(msg)
  local result = {
    method = 'auth',
    result = 'none',
    props = { ['smtp.mailfrom'] = tostring(msg:sender()) },
  }
  local authn_id = msg:get_meta 'authn_id'
  if authn_id then
    result.result = 'pass'
    result.props['smtp.auth'] = authn_id
  end
  return result
end

function mod.check(msg, opt_config)
  local config = read_config(opt_config)
  local checked = {}
  local all = {}
  local function add(result)
    table.insert(all, result)
    return result
  end

  if config.dkim then
    checked.dkim = dkim_results(msg, config.resolver)
    for _, result in ipairs(checked.dkim) do
      add(result)
    end
  end
  if config.spf then
    checked.spf = add(kumo.spf.check_msg(msg, config.resolver).result)
  end
  if config.iprev then
    checked.iprev = add(mod.iprev_msg(msg, config.resolver))
  end
  if config.smtp_auth then
    checked.smtp_auth = add(smtp_auth_result(msg))
  end
  -- DMARC judges the DKIM and SPF results, so it runs only when both were collected.
  if config.dmarc and config.dkim and config.spf then
    local dmarc =
      kumo.dmarc.check_msg(msg, checked.dkim, config.resolver, checked.spf, false)
    checked.dmarc = add(dmarc.result)
  end
  if config.arc then
    checked.arc = add(msg:arc_verify(config.resolver))
  end

  if config.add_auth_results_header then
    local server_id = config.server_id or msg:get_meta 'hostname' or 'localhost'
    msg:add_authentication_results(server_id, all)
  end
  checked.auth_results = all
  return checked
end

function mod.iprev_msg(msg, opt_resolver)
  local received_from = msg:get_meta 'received_from'
  if received_from == nil then
    error('mail_auth.iprev_msg: the message has no received_from meta value', 2)
  end
  local ip = utils.split_ip_port(received_from)
  return mod.iprev(ip, opt_resolver)
end

-- kumo.dns.lookup_addr raises for a name that does not exist (as KumoMTA's docs say),
-- where its resolvers return no addresses; both mean "no records" here. (lookup_ptr
-- answers NXDOMAIN with no names, as KumoMTA's does.)
local function no_such_name(err)
  return tostring(err):find('NXDOMAIN', 1, true) ~= nil
end

-- RFC 8601 section 3: the address's PTR names must resolve back to the address.
function mod.iprev(ip, opt_resolver)
  local result = { method = 'iprev', props = { ['smtp.remote-ip'] = ip } }

  local ok, names = pcall(kumo.dns.lookup_ptr, ip, opt_resolver)
  if not ok and not no_such_name(names) then
    result.result = 'temperror'
    result.reason = string.format('ip %s failed to resolve PTR: %s', ip, tostring(names))
    return result
  end
  if not ok or #names == 0 then
    result.result = 'permerror'
    result.reason = string.format('ip %s has no PTR', ip)
    return result
  end

  result.result = 'fail'
  for _, name in ipairs(names) do
    local found, addrs = pcall(kumo.dns.lookup_addr, name, opt_resolver)
    if not found and no_such_name(addrs) then
      found, addrs = true, {}
    end
    if not found then
      result.result = 'temperror'
      result.reason = string.format('failed to resolve %s: %s', name, tostring(addrs))
    else
      if #addrs == 0 then
        result.reason = string.format('name %s has no A/AAAA', name)
      end
      for _, addr in ipairs(addrs) do
        if addr == ip then
          result.result = 'pass'
          result.reason = string.format('ip %s <-> %s', ip, name)
          return result
        end
      end
    end
  end
  return result
end

return mod
