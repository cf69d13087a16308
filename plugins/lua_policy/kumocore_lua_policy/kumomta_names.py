"""The names of KumoMTA's ``kumo`` module, from its reference documentation.

Used so that a policy calling something KumoMTA has and kumocore lacks fails with one clear
line ("KumoMTA's 'kumo.X' is not supported by kumocore yet") instead of Lua's "attempt to
call a nil value". The list holds names only (facts from KumoMTA's docs/reference/kumo*,
regex/ and string/ directories, plus a few undocumented ones its helper modules call).
Pages that document a method under a module's name are left out: ``kumo.nats/publish.md``
and ``close.md`` describe ``client:publish`` and ``client:close()`` of a
``kumo.nats.connect`` client; KumoMTA registers no ``kumo.nats.publish`` or ``close``.
"""

from __future__ import annotations

KUMOMTA_FUNCTIONS: frozenset[str] = frozenset({
    "aaa.auth_info", "aaa.configure_acct_log", "aaa.load_acl_map",
    "aaa.make_access_control_list", "aaa.make_http_url_resource", "aaa.query_resource_access",
    "aaa.set_acl_cache_ttl", "aaa.set_check_cache_ttl", "aaa.set_fall_back_to_acl_map",
    "amqp.basic_publish", "amqp.build_client", "api.admin.bounce.bounce",
    "api.admin.suspend.suspend", "api.admin.suspend_ready_q.suspend", "api.inject.inject_v1",
    "apply_supplemental_trace_header", "available_parallelism", "bump_config_epoch",
    "cidr.make_map", "compute_egress_path_config_constraints",
    "compute_queue_config_constraints", "configure_accounting_db_path",
    "configure_bounce_classifier", "configure_local_logs", "configure_log_disposition_hook",
    "configure_log_hook", "configure_redis_throttles", "counter_series.define",
    "crypto.aes_decrypt_block", "crypto.aes_encrypt_block", "crypto.aws_sign_v4",
    "define_spool", "digest.crc32",
    "digest.hmac_sha1", "digest.hmac_sha224", "digest.hmac_sha256", "digest.hmac_sha384",
    "digest.hmac_sha512", "digest.sha1", "digest.sha224", "digest.sha256", "digest.sha384",
    "digest.sha3_256", "digest.sha3_384", "digest.sha3_512", "digest.sha512",
    "digest.sha512_256", "disconnect", "dkim.ed25519_signer", "dkim.rsa_sha256_signer",
    "dkim.set_signing_threads", "dmarc.check_msg", "dns.configure_resolver",
    "dns.configure_unbound_resolver", "dns.define_resolver", "dns.load_resolv_conf",
    "dns.lookup_addr", "dns.lookup_mx", "dns.lookup_ptr", "dns.lookup_txt", "dns.ptr_host",
    "dns.rbl_lookup", "dns.reverse_ip", "dns.set_mta_sts_enabled",
    "dns.set_mx_concurrency_limit", "dns.set_mx_negative_cache_ttl", "dns.set_mx_timeout",
    "domain_map.new", "enable_memory_callstack_tracking", "encode.base32_decode",
    "encode.base32_encode", "encode.base32_nopad_decode", "encode.base32_nopad_encode",
    "encode.base32hex_decode", "encode.base32hex_encode", "encode.base32hex_nopad_decode",
    "encode.base32hex_nopad_encode", "encode.base64_decode", "encode.base64_encode",
    "encode.base64_nopad_decode", "encode.base64_nopad_encode", "encode.base64url_decode",
    "encode.base64url_encode", "encode.base64url_nopad_decode",
    "encode.base64url_nopad_encode", "encode.charset_decode", "encode.charset_encode",
    "encode.hex_decode", "encode.hex_encode", "eval_config_monitor_globs",
    "file_type.from_bytes", "file_type.from_extension", "file_type.from_media_type",
    "format_egress_path_config_constraints", "format_egress_path_config_toml",
    "format_queue_config_toml", "fs.glob", "fs.metadata_for_path", "fs.open", "fs.read_dir",
    "fs.symlink_metadata_for_path", "fs.uncached_glob",
    "get_event_registrars", "get_memory_hard_limit", "get_memory_low_thresh",
    "get_memory_soft_limit", "glob", "http.build_client", "http.build_url",
    "http.connect_websocket", "inject_message", "invoke_get_egress_path_config",
    "invoke_get_egress_pool", "invoke_get_egress_source", "invoke_get_queue_config",
    "json_encode", "json_encode_pretty", "json_load", "json_parse", "jsonl.new_multi_tailer",
    "jsonl.new_tailer", "jsonl.new_writer", "kafka.build_producer", "log_debug", "log_error",
    "log_info", "log_warn", "make_egress_path", "make_egress_pool", "make_egress_source",
    "make_listener_domain", "make_message", "make_queue_config", "make_throttle", "memoize",
    "mimepart.builder", "mimepart.new_binary", "mimepart.new_html", "mimepart.new_multipart",
    "mimepart.new_text", "mimepart.new_text_plain", "mimepart.parse", "mpsc.define",
    "nats.connect", "on", "read_dir", "regex.compile",
    "regex.escape", "regex_set_map.new", "reject", "secrets.load", "serde.json_encode",
    "serde.json_encode_pretty", "serde.json_load", "serde.json_parse", "serde.toml_encode",
    "serde.toml_encode_pretty", "serde.toml_encode_pretty_compact", "serde.toml_load",
    "serde.toml_parse", "serde.yaml_encode", "serde.yaml_load", "serde.yaml_parse",
    "set_config_monitor_globs", "set_diagnostic_log_filter",
    "set_httpinject_recipient_rate_limit", "set_httpinject_threads", "set_logging_threads",
    "set_lruttl_cache_capacity", "set_max_lua_context_age", "set_max_lua_context_use_count",
    "set_max_spare_lua_contexts", "set_memory_hard_limit", "set_memory_low_thresh",
    "set_memory_soft_limit", "set_qmaint_threads", "set_ready_qmaint_threads",
    "set_readyq_threads", "set_smtpsrv_threads", "set_spoolin_threads", "shaping.load",
    "sleep", "spawn_task", "spf.check_host", "spf.check_msg", "start_esmtp_listener",
    "start_http_listener", "string.ends_with", "string.eval_template",
    "string.normalize_smtp_response", "string.psl_domain", "string.psl_suffix",
    "string.replace", "string.replacen", "string.rsplit", "string.rsplitn", "string.split",
    "string.split_ascii_whitespace", "string.split_whitespace", "string.splitn",
    "string.starts_with", "string.trim", "string.trim_end", "string.trim_start", "string.wrap",
    "suspend_delivery_when_spool_unhealthy", "time.from_unix_timestamp", "time.now",
    "time.parse_duration", "time.parse_rfc2822", "time.parse_rfc3339", "time.sleep",
    "time.start_timer", "time.with_ymd_hms", "toml_encode", "toml_encode_pretty", "toml_load",
    "toml_parse", "traceback", "uncached_glob", "uuid.new_v1", "uuid.new_v4", "uuid.new_v6",
    "uuid.new_v7", "uuid.parse", "validation_failed", "version", "xfer.cancel_xfer",
    "xfer.get_xfer_target", "xfer.xfer", "xfer.xfer_in_requeue",
})  # fmt: skip


def missing_names(present: set[str]) -> list[str]:
    """KumoMTA's names (and the namespaces leading to them) that ``present`` lacks."""
    missing: set[str] = set()
    for name in KUMOMTA_FUNCTIONS:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix not in present and not any(p.startswith(prefix + ".") for p in present):
                missing.add(prefix)
                break
    return sorted(missing)
