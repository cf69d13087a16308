-- kumocore's policy-extras.rollup: send the mail of several destination domains through
-- one ready queue when their MX hosts say they are the same site (docs/helpers.md, section
-- "Queue rollup"). Function names, arguments and effects are those of KumoMTA's helper:
--
--   local rollup = require 'policy-extras.rollup'
--   -- in smtp_server_message_received / http_message_generated, one of:
--   rollup.reroute_based_on_mx_host_suffix(msg,
--     { ['.olc.protection.outlook.com.'] = 'outlook.com' })
--   rollup.reroute_using_ip_rollup(msg,
--     { ['.mail.protection.outlook.com.'] = 'outlook.ip_rollup' })
--   -- in get_queue_config, for the second one:
--   rollup.apply_ip_rollup_to_queue_config(domain, routing_domain, params)
--
-- Matching is KumoMTA's, on purpose literal: MX host names come from kumo.dns.lookup_mx
-- lower-case and ending in a dot, and a suffix is compared with the end of the name as
-- written, so '.olc.protection.outlook.com.' matches and '.olc.protection.outlook.com'
-- or '.OLC.protection.outlook.com.' never do. No lookup is cached here: lookup_mx and
-- lookup_addr answer from the resolver's cache, and get_queue_config answers are kept per
-- queue, so a busy domain costs no extra DNS traffic.
local kumo = require 'kumo'

local mod = {}

-- The suffix that IP rollup routing domains carry; other routing domains are not ours.
local IP_ROLLUP_SUFFIX = '.ip_rollup'

-- An empty suffix would match every host: it matches none, as in KumoMTA.
local function has_suffix(name, suffix)
  return suffix ~= '' and #name >= #suffix and name:sub(#name - #suffix + 1) == suffix
end

local function all_have_suffix(hosts, suffix)
  if hosts == nil or #hosts == 0 then
    return false
  end
  for _, host in ipairs(hosts) do
    if not has_suffix(host, suffix) then
      return false
    end
  end
  return true
end

-- The mapping's suffixes, most specific (longest) first, then by name: when two entries
-- both match, the longer one wins every time (KumoMTA takes whichever pairs() yields).
local function ordered_suffixes(mapping)
  local suffixes = {}
  for suffix in pairs(mapping) do
    if type(suffix) ~= 'string' then
      error(string.format('mapping keys must be MX host name suffixes (strings), got %s',
        type(suffix)))
    end
    suffixes[#suffixes + 1] = suffix
  end
  table.sort(suffixes, function(a, b)
    if #a ~= #b then
      return #a > #b
    end
    return a < b
  end)
  return suffixes
end

-- The routing domain of the first suffix that every one of `hosts` ends with, or nil.
local function match_mapping(hosts, mapping)
  for _, suffix in ipairs(ordered_suffixes(mapping)) do
    if all_have_suffix(hosts, suffix) then
      return mapping[suffix]
    end
  end
  return nil
end

-- The hosts of the lowest preference value of a MailExchanger table (the ones tried
-- first), in lookup_mx's order (by name); nil when it has none.
local function most_preferred_hosts(mx)
  local best_pref, best_hosts = nil, nil
  for pref, hosts in pairs(mx.by_pref) do
    local value = tonumber(pref)
    if best_pref == nil or value < best_pref then
      best_pref, best_hosts = value, hosts
    end
  end
  return best_hosts
end

local function recipient_domain(msg)
  return msg:recipient_list()[1].domain
end

-- Runs `body`; a failure (most often a DNS error for the recipient's domain) is printed
-- with `what` and otherwise ignored, so the message is accepted and routed as it was.
local function logged_on_failure(what, body)
  local ok, err = pcall(body)
  if not ok then
    print(string.format('while checking %s: %s', what, tostring(err)))
  end
end

function mod.reroute_based_on_mx_host_suffix(msg, mapping)
  logged_on_failure('mx host pattern', function()
    local domain = recipient_domain(msg)
    local mx = kumo.dns.lookup_mx(domain)
    local routing_domain = match_mapping(mx.hosts, mapping)
    -- Mail already addressed to the routing domain stays in its plain queue.
    if routing_domain ~= nil and domain:lower() ~= routing_domain:lower() then
      msg:set_meta('routing_domain', routing_domain)
    end
  end)
end

function mod.reroute_using_ip_rollup(msg, mapping)
  logged_on_failure('ip_rollup', function()
    local mx = kumo.dns.lookup_mx(recipient_domain(msg))
    -- As KumoMTA: no match sets routing_domain to nil, which removes one set earlier.
    msg:set_meta('routing_domain', match_mapping(most_preferred_hosts(mx), mapping))
  end)
end

-- The mx_list entries for a domain: every address of each of its most preferred MX
-- hosts, as { name = host, addr = address }. Each host's addresses are sorted so that
-- the list, and the ready queue name made from it, do not change with the DNS server's
-- answer order.
local function ip_rollup_mx_list(domain)
  local entries = {}
  for _, host in ipairs(most_preferred_hosts(kumo.dns.lookup_mx(domain)) or {}) do
    local addrs = {}
    for _, addr in ipairs(kumo.dns.lookup_addr(host)) do
      addrs[#addrs + 1] = addr
    end
    table.sort(addrs)
    for _, addr in ipairs(addrs) do
      entries[#entries + 1] = { name = host, addr = addr }
    end
  end
  return entries
end

-- For a queue that reroute_using_ip_rollup made (routing domain ending in .ip_rollup),
-- deliver to the addresses of the domain's most preferred MX hosts; other queues are left
-- alone. DNS errors are raised: get_queue_config then refuses the message.
function mod.apply_ip_rollup_to_queue_config(domain, routing_domain, params)
  if type(routing_domain) ~= 'string' or not has_suffix(routing_domain, IP_ROLLUP_SUFFIX) then
    return
  end
  params.protocol = { smtp = { mx_list = ip_rollup_mx_list(domain) } }
end

return mod
