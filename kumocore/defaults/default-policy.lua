-- kumocore's bundled default policy: what `make serve` runs.
-- An embedded RocksDB spool and local logs in a per-user directory: $KUMOCORE_VAR, else
-- $XDG_STATE_HOME/kumocore, else ./var (never a shared place like /tmp, where another
-- user could create it first; kumocore refuses a directory it does not own),
-- an ESMTP listener on 127.0.0.1:2025 and the HTTP API on 127.0.0.1:8000 (unprivileged
-- ports; $KUMOCORE_SMTP_LISTEN and $KUMOCORE_HTTP_LISTEN move them), relaying only for
-- loopback clients. Copy it and edit to make it your own.
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

-- DKIM signing, when $KUMOCORE_DKIM_KEY names a private key (PEM, RSA): every message is
-- signed for the domain of its From header with selector $KUMOCORE_DKIM_SELECTOR
-- (default 'default'); publish the public key at <selector>._domainkey.<domain>.
local DKIM_KEY = os.getenv 'KUMOCORE_DKIM_KEY'
local DKIM_SELECTOR = os.getenv 'KUMOCORE_DKIM_SELECTOR' or 'default'

local function dkim_sign(msg)
  local from = msg:from_header()
  if not DKIM_KEY or not from then
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
  dkim_sign(msg)
end)

kumo.on('http_message_generated', function(msg)
  dkim_sign(msg)
end)
