// kumocore benchmark: route Haraka's outbound deliveries to the benchmark's sinks.
// bench/haraka.py copies this plugin into a private instance's plugins/ directory and
// writes the two ports into config/bench_route.ini. Mail for the sample domain goes to
// the capture server (DKIM and disk-queue checks), everything else to smtp-sink.
'use strict'

exports.register = function () {
    this.cfg = this.config.get('bench_route.ini').main
}

exports.hook_get_mx = function (next, hmail, domain) {
    const port = domain === this.cfg.sample_domain ? this.cfg.sample_port : this.cfg.sink_port
    next(OK, { exchange: '127.0.0.1', port: Number(port), priority: 0 })
}
