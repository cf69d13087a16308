-- An example server policy built on kumocore's policy helpers, laid out like KumoMTA's
-- "Example Server Policy": sources and pools, DKIM signing, traffic shaping, queue
-- management and listener domains all come from data files next to this policy.
-- See docs/helpers.md. Paths and addresses are examples: change them for your site.
local kumo = require 'kumo'

local shaping = require 'policy-extras.shaping'
local queue_module = require 'policy-extras.queue'
local listener_domains = require 'policy-extras.listener_domains'
local sources = require 'policy-extras.sources'
local dkim_sign = require 'policy-extras.dkim_sign'

-- Sending IPs (sources) and the pools that group them.
sources:setup { '/opt/kumocore/etc/policy/sources.toml' }

-- DKIM: which From domains are signed, with which selector, key and algorithm.
local dkim_signer = dkim_sign:setup { '/opt/kumocore/etc/policy/dkim_data.toml' }

-- Traffic shaping: kumocore's default rules, then ours on top.
local shaper = shaping:setup_with_automation {
  extra_files = { '/opt/kumocore/etc/policy/shaping.toml' },
}

-- Tenants (X-Tenant header), their pools, and queue settings.
local queue_helper = queue_module:setup { '/opt/kumocore/etc/policy/queues.toml' }

kumo.on('init', function()
  kumo.define_spool {
    name = 'data',
    path = '/var/spool/kumocore/data',
    kind = 'RocksDB',
  }
  kumo.define_spool {
    name = 'meta',
    path = '/var/spool/kumocore/meta',
    kind = 'RocksDB',
  }
  kumo.configure_local_logs {
    log_dir = '/var/log/kumocore',
  }
  kumo.start_http_listener {
    listen = '127.0.0.1:8000',
    trusted_hosts = { '127.0.0.1', '::1' },
  }
  kumo.start_esmtp_listener {
    listen = '0.0.0.0:25',
    hostname = 'mail.example.com',
    relay_hosts = { '127.0.0.1' },
  }
end)

-- Which domains this server accepts mail for (relay), and where bounce/FBL reports land.
kumo.on(
  'get_listener_domain',
  listener_domains:setup { '/opt/kumocore/etc/policy/listener_domains.toml' }
)

kumo.on('get_egress_path_config', shaper.get_egress_path_config)

kumo.on('smtp_server_message_received', function(msg)
  queue_helper:apply(msg)
  -- Sign last: any later change to the message would break the signature.
  dkim_signer(msg)
end)

kumo.on('http_message_generated', function(msg)
  queue_helper:apply(msg)
  dkim_signer(msg)
end)
