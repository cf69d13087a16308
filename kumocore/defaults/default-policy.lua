-- kumocore's bundled default policy: what `make serve` runs.
-- An embedded RocksDB spool and local logs in a per-user directory: $KUMOCORE_VAR, else
-- $XDG_STATE_HOME/kumocore, else ./var (never a shared place like /tmp, where another
-- user could create it first; kumocore refuses a directory it does not own),
-- an ESMTP listener on 127.0.0.1:2025 and the HTTP API on 127.0.0.1:8000 (unprivileged
-- ports; $KUMOCORE_SMTP_LISTEN and $KUMOCORE_HTTP_LISTEN move them), relaying only for
-- loopback clients. Copy it and edit to make it your own.
--
-- Environment variables it reads (all optional):
--   KUMOCORE_VAR, KUMOCORE_SMTP_LISTEN, KUMOCORE_HTTP_LISTEN  where it keeps and listens
--   KUMOCORE_DKIM_KEY=/path/key.pem   DKIM-sign every message (see dkim_sign below)
--   KUMOCORE_DKIM_SELECTOR=default    the selector for that signature
--   KUMOCORE_RELAY_HOST=HOST:PORT     send every message to that one server (a smarthost,
--     or `kumocore sink` on 127.0.0.1:2526 to try things out) instead of the recipients'
--     MX hosts. It sets each message's routing_domain meta (`[IP]` for an IPv4 address,
--     else the name, looked up as MX then A) and, for that path, the port and an empty
--     prohibited_hosts, since you named the host (loopback is refused by default, to
--     prevent mail loops). Without it, mail goes to the real MX hosts.
local kumo = require 'kumo'

local function state_dir()
  local xdg = os.getenv 'XDG_STATE_HOME'
  if xdg and xdg ~= '' then
    return xdg .. '/kumocore'
  end
  return './var'
end
local VAR = os.getenv 'KUMOCORE_VAR' or state_dir()
-- The bounce classifier's bundled rules, wherever kumocore is installed.
local RULES = os.getenv 'KUMOCORE_BOUNCE_RULES' or kumo.bounce_classifier_default_rules()

kumo.on('init', function()
  kumo.define_spool { name = 'data', path = VAR .. '/spool/data', kind = 'RocksDB' }
  kumo.define_spool { name = 'meta', path = VAR .. '/spool/meta', kind = 'RocksDB' }

  kumo.configure_local_logs {
    log_dir = VAR .. '/logs',
    max_segment_duration = '5 minutes',
  }

  kumo.configure_bounce_classifier { files = { RULES } }

  kumo.start_http_listener {
    listen = os.getenv 'KUMOCORE_HTTP_LISTEN' or '127.0.0.1:8000',
    trusted_hosts = { '127.0.0.1', '::1' },
  }

  kumo.start_esmtp_listener {
    listen = os.getenv 'KUMOCORE_SMTP_LISTEN' or '127.0.0.1:2025',
    relay_hosts = { '127.0.0.1', '::1' },
  }
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config {
    retry_interval = '1 minute',
    max_retry_interval = '20 minutes',
  }
end)

-- The relay host ($KUMOCORE_RELAY_HOST), split once at load; a malformed value stops the
-- start with this file and line.
local RELAY_HOST = os.getenv 'KUMOCORE_RELAY_HOST'
local RELAY_DOMAIN, RELAY_PORT
if RELAY_HOST and RELAY_HOST ~= '' then
  local host, port = RELAY_HOST:match '^([%w%.%-]+):(%d+)$'
  if not host or tonumber(port) < 1 or tonumber(port) > 65535 then
    error('KUMOCORE_RELAY_HOST=' .. RELAY_HOST .. ': expected HOST:PORT, e.g. 127.0.0.1:2526')
  end
  RELAY_DOMAIN = host:match '^%d+%.%d+%.%d+%.%d+$' and ('[' .. host .. ']') or host
  RELAY_PORT = tonumber(port)
end

local function route(msg)
  if RELAY_DOMAIN then
    msg:set_meta('routing_domain', RELAY_DOMAIN)
  end
end

if RELAY_DOMAIN then
  kumo.on('get_egress_path_config', function(domain, egress_source, site_name)
    return kumo.make_egress_path {
      smtp_port = RELAY_PORT,
      prohibited_hosts = {},
    }
  end)
end

-- DKIM signing, when $KUMOCORE_DKIM_KEY names a private key (PEM, RSA): every message is
-- signed for the domain of its From header with selector $KUMOCORE_DKIM_SELECTOR
-- (default 'default'); publish the public key at <selector>._domainkey.<domain>.
local DKIM_KEY = os.getenv 'KUMOCORE_DKIM_KEY'
local DKIM_SELECTOR = os.getenv 'KUMOCORE_DKIM_SELECTOR' or 'default'

local function dkim_sign(msg)
  local from = msg:from_header()
  -- One From address gives the signing domain; several (RFC 5322 allows them, with a
  -- Sender) have no single one, and .domain refuses them, as KumoMTA's does.
  if not DKIM_KEY or not from or #from.list ~= 1 then
    return
  end
  msg:dkim_sign(kumo.dkim.rsa_sha256_signer {
    domain = from.domain,
    selector = DKIM_SELECTOR,
    headers = { 'From', 'To', 'Subject', 'Date', 'Message-ID' },
    key = DKIM_KEY,
  })
end

kumo.on('smtp_server_message_received', function(msg)
  local tenant = msg:get_first_named_header_value 'X-Tenant'
  if tenant then
    msg:set_meta('tenant', tenant)
  end
  route(msg)
  dkim_sign(msg)
end)

kumo.on('http_message_generated', function(msg)
  route(msg)
  dkim_sign(msg)
end)
